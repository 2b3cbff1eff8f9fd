package evaluate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// Generator kinds (--generator).
const (
	GeneratorOpenAI = "openai" // an OpenAI-compatible endpoint serving "sft" and one adapter per persona (vLLM)
	GeneratorLocal  = "local"  // in-process GoMLX: base + SFT adapter, and + the persona's DPO adapter
)

// Judge kinds (--judge).
const (
	JudgeRules  = "rules"  // the dietary-rules judge (offline default)
	JudgeGemini = "gemini" // Gemini through google.golang.org/genai
)

// Environment variables of the Gemini API key (first one set wins); Vertex AI uses
// Application Default Credentials instead.
const (
	EnvGeminiKey = "GEMINI_API_KEY"
	EnvGoogleKey = "GOOGLE_API_KEY"
)

// GeneratorConfig says how the SFT baseline and each persona's DPO model answer. Every field
// is serialized into the job: no secrets.
type GeneratorConfig struct {
	Kind string
	// openai: the endpoint, the SFT model name and the DPO model name pattern ("{persona}"
	// is replaced by the persona id), as vLLM serves LoRA adapters by name.
	URL, SFTModel, DPOModelPattern string
	// local: the base model, the SFT adapter merged into it, and the directory of trained
	// adapters (<AdaptersDir>/<persona>_v<Version>).
	ModelDir, Tokenizer, SFTAdapter, AdaptersDir, Version, Backend string
	// Sampling: the same for both models. Temperature 0 (greedy) makes runs reproducible.
	Temperature, TopP float64
	// PresencePenalty and FrequencyPenalty (OpenAI semantics, 0 = off), both models alike.
	PresencePenalty, FrequencyPenalty float64
	MaxTokens                         int
	Seed                              int64
	Limits                            llm.Limits
	// DecodeBatch is how many requests to one local model are decoded together
	// (llm.GenerateAll); answers do not depend on it.
	DecodeBatch int
	// Replicas is how many copies of each local model a worker loads, to decode that many
	// batches at once (localgen.Config.Replicas); answers do not depend on it.
	Replicas int
}

// DPOModel is the endpoint model name of a persona's DPO adapter.
func (g GeneratorConfig) DPOModel(persona string) string {
	return strings.ReplaceAll(g.DPOModelPattern, "{persona}", persona)
}

// AdapterDir is the local directory of a persona's trained adapter.
func (g GeneratorConfig) AdapterDir(persona string) string {
	return strings.TrimSuffix(g.AdaptersDir, "/") + "/" + persona + "_v" + g.Version
}

// JudgeConfig selects the judge.
type JudgeConfig struct {
	Kind string
	// gemini: "gemini-api" (key from the environment) or "vertex" (Project, Location).
	Backend, Project, Location, Model, BaseURL string
	Limits                                     llm.Limits
}

// Config is the evaluation job's configuration.
type Config struct {
	Output    string // run root (local or gs://): results and reports go under <Output>/reports
	RunID     string // identifies the run in the reports and BigQuery
	RunDate   string // YYYY-MM-DD, the BigQuery partition
	Personas  []schemas.Persona
	Cases     []schemas.TestCase
	Generator GeneratorConfig
	Judge     JudgeConfig
	BatchSize int
	NoCache   bool
	// BigQuery, when enabled (--bq_dataset), loads the results into a table too.
	BigQuery BigQueryConfig
}

// CacheRoot is the call cache under the run root (shared with the prepare job's).
func (c Config) CacheRoot() string { return c.Output + "/cache/llm" }

// Validate checks the configuration, naming the flag to fix.
func (c Config) Validate() error {
	var errs []error
	if c.Output == "" {
		errs = append(errs, errors.New("--output is empty"))
	}
	if c.RunID == "" {
		errs = append(errs, errors.New("--run_id is empty"))
	}
	if len(c.Personas) == 0 || len(c.Cases) == 0 {
		errs = append(errs, errors.New("no test cases selected; check --test_cases and --persona"))
	}
	g := c.Generator
	switch g.Kind {
	case GeneratorOpenAI:
		if g.URL == "" || g.SFTModel == "" || !strings.Contains(g.DPOModelPattern, "{persona}") {
			errs = append(errs, errors.New("--generator=openai needs --generator_url, --sft_model and a --dpo_model pattern containing {persona}"))
		}
	case GeneratorLocal:
		if g.ModelDir == "" || g.AdaptersDir == "" {
			errs = append(errs, errors.New("--generator=local needs --model_dir and --adapters_dir"))
		}
	default:
		errs = append(errs, fmt.Errorf("--generator=%q: use %q or %q", g.Kind, GeneratorOpenAI, GeneratorLocal))
	}
	if g.DecodeBatch < 1 {
		errs = append(errs, fmt.Errorf("--generator_batch (%d) must be ≥ 1", g.DecodeBatch))
	}
	if g.Replicas < 1 {
		errs = append(errs, fmt.Errorf("--generator_replicas (%d) must be ≥ 1", g.Replicas))
	}
	if g.MaxTokens <= 0 || !(g.Temperature >= 0 && g.Temperature <= 2) {
		errs = append(errs, fmt.Errorf("--max_tokens must be > 0 and --temperature in [0, 2]; got %d, %g", g.MaxTokens, g.Temperature))
	}
	if err := llm.ValidatePenalties(g.PresencePenalty, g.FrequencyPenalty); err != nil {
		errs = append(errs, err)
	}
	if err := g.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("generator limits: %w", err))
	}
	switch c.Judge.Kind {
	case JudgeRules:
	case JudgeGemini:
		if b := c.Judge.Backend; b != "gemini-api" && b != "vertex" {
			errs = append(errs, fmt.Errorf("--gemini_backend=%q: use gemini-api or vertex", b))
		}
		if c.Judge.Backend == "vertex" && (c.Judge.Project == "" || c.Judge.Location == "") {
			errs = append(errs, errors.New("--gemini_backend=vertex needs --project and --location"))
		}
		if err := c.Judge.Limits.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("judge limits: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("--judge=%q: use %q or %q", c.Judge.Kind, JudgeRules, JudgeGemini))
	}
	if err := c.BigQuery.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("--batch_size must be > 0, got %d", c.BatchSize))
	}
	return errors.Join(errs...)
}

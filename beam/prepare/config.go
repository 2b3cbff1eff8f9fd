package prepare

import (
	"errors"
	"fmt"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/label"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
	"github.com/pantrypilot/recipe-dpo/transforms/variants"
)

// Generator kinds (--generator).
const (
	GeneratorOpenAI = "openai" // an OpenAI-compatible endpoint, e.g. vLLM serving the SFT adapter
	GeneratorLocal  = "local"  // the project's GoMLX Llama in-process (transforms/localgen)
)

// Labeler kinds (--labeler).
const (
	LabelerGroq  = "groq"  // an LLM judge through Groq's OpenAI-compatible API, with the rules veto
	LabelerRules = "rules" // the dietary-rules judge alone (offline)
)

// Default endpoints and models.
const (
	DefaultGroqURL   = "https://api.groq.com/openai/v1"
	DefaultGroqModel = "llama-3.3-70b-versatile"
)

// Environment variables that hold API keys. Keys are read on the worker, in the DoFns'
// Setup, so they never enter the serialized pipeline, logs or outputs.
const (
	EnvGroqKey      = "GROQ_API_KEY"
	EnvGeneratorKey = "GENERATOR_API_KEY"
)

// GeneratorConfig selects and configures the variant generator. Every field is serialized
// into the job: no secrets here.
type GeneratorConfig struct {
	Kind   string
	URL    string // openai: the endpoint
	Spec   variants.Spec
	Limits llm.Limits
	// local: the model, loaded once per worker process.
	ModelDir, Tokenizer, SFTAdapter, Backend string
	// DecodeBatch is how many requests of a fan-out batch the local model decodes together
	// (llm.GenerateAll); answers do not depend on it. Remote endpoints get one call each.
	DecodeBatch int
	// Replicas is how many copies of the local model a worker loads, to decode that many
	// batches at once (localgen.Config.Replicas); answers do not depend on it.
	Replicas int
}

// LabelerConfig selects and configures the preference judge.
type LabelerConfig struct {
	Kind   string
	URL    string
	Model  string
	Veto   string
	Limits llm.Limits
}

// Config is the data-preparation job's configuration.
type Config struct {
	Output      string            // run root: a local directory or gs://bucket/prefix
	Personas    []schemas.Persona // the personas of this run
	Prompts     []schemas.Prompt  // the prompts, generated or read by the launcher
	Generator   GeneratorConfig
	Labeler     LabelerConfig
	PromptStyle string // chatml.StyleNeutral (default) or chatml.StylePersona
	BatchSize   int    // prompts per LLM fan-out batch (one GroupByKey group)
	ShardRows   int    // max rows per Parquet shard
	NoCache     bool   // bypass the call cache (it is still written)
	CodeVersion string
	// Inputs maps input names to content hashes for the manifest.
	Inputs map[string]string
	// Settings are the user-facing settings recorded in the manifest.
	Settings map[string]any
}

// CacheRoot is where the content-addressed call cache lives, under the run root, so a
// re-run or a Dataflow retry of the same run makes no repeated calls.
func (c Config) CacheRoot() string { return c.Output + "/cache/llm" }

// Validate checks the configuration, naming the flag to fix.
func (c Config) Validate() error {
	var errs []error
	if c.Output == "" {
		errs = append(errs, errors.New("--output is empty; pass a directory or gs://bucket/prefix"))
	}
	if len(c.Personas) == 0 {
		errs = append(errs, errors.New("no personas selected; check --personas and --persona"))
	}
	if len(c.Prompts) == 0 {
		errs = append(errs, errors.New("no prompts: --count is 0 or --prompts is empty"))
	}
	if c.Generator.Kind != GeneratorOpenAI && c.Generator.Kind != GeneratorLocal {
		errs = append(errs, fmt.Errorf("--generator=%q: use %q or %q", c.Generator.Kind, GeneratorOpenAI, GeneratorLocal))
	}
	if c.Generator.Kind == GeneratorLocal && c.Generator.ModelDir == "" {
		errs = append(errs, errors.New("--generator=local needs --model_dir (a Llama directory with config.json, model.safetensors and tokenizer.json)"))
	}
	if c.Generator.DecodeBatch < 1 {
		errs = append(errs, fmt.Errorf("--generator_batch (%d) must be ≥ 1", c.Generator.DecodeBatch))
	}
	if c.Generator.Replicas < 1 {
		errs = append(errs, fmt.Errorf("--generator_replicas (%d) must be ≥ 1", c.Generator.Replicas))
	}
	if c.Generator.Kind == GeneratorOpenAI && c.Generator.URL == "" {
		errs = append(errs, errors.New("--generator_url is empty; point it at an OpenAI-compatible server (e.g. vLLM: http://host:8000/v1)"))
	}
	if err := c.Generator.Spec.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Generator.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("generator limits: %w", err))
	}
	switch c.Labeler.Kind {
	case LabelerRules:
	case LabelerGroq:
		if c.Labeler.URL == "" || c.Labeler.Model == "" {
			errs = append(errs, errors.New("--labeler=groq needs --groq_url and --groq_model"))
		}
		if err := c.Labeler.Limits.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("labeler limits: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("--labeler=%q: use %q or %q", c.Labeler.Kind, LabelerGroq, LabelerRules))
	}
	if err := label.ValidateVeto(c.Labeler.Veto); err != nil {
		errs = append(errs, err)
	}
	if _, err := chatml.System(c.PromptStyle, schemas.Persona{}); err != nil {
		errs = append(errs, fmt.Errorf("--prompt_style: %w", err))
	}
	if c.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("--batch_size must be > 0, got %d", c.BatchSize))
	}
	if c.ShardRows < 0 {
		errs = append(errs, fmt.Errorf("--shard_rows must be >= 0, got %d", c.ShardRows))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero values.
func (c Config) withDefaults() Config {
	if c.ShardRows == 0 {
		c.ShardRows = shards.DefaultMaxRows
	}
	if c.PromptStyle == "" {
		c.PromptStyle = chatml.StyleNeutral
	}
	return c
}

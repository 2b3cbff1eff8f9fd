package main

import (
	"flag"
	"time"

	"github.com/pantrypilot/recipe-dpo/beam/evaluate"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// options are the launcher's flags; Beam's own (--runner, --project, --region, ...) are
// registered by the Beam packages on the same flag set. --project doubles as the Vertex AI
// project.
type options struct {
	Output, RunID, RunDate, TestCases, PersonasPath, Persona string

	Generator, GeneratorURL, SFTModel, DPOModel           string
	ModelDir, Tokenizer, SFTAdapter, AdaptersDir, Version string
	Backend                                               string
	Temperature, TopP                                     float64
	PresencePenalty, FrequencyPenalty                     float64
	DecodeBatch                                           int
	Replicas                                              int
	MaxTokens                                             int
	Seed                                                  int64
	GenLimits                                             llm.Limits

	Judge, GeminiBackend, Location, GeminiModel, GeminiURL string
	JudgeLimits                                            llm.Limits

	BQDataset, BQTable, BQStaging, BQLocation, BQEndpoint string
	BQReplace                                             bool

	MaxRetries int
	Timeout    time.Duration
	BatchSize  int
	NoCache    bool
	LogLevel   string
}

func registerFlags(fs *flag.FlagSet) *options {
	o := &options{}
	fs.StringVar(&o.Output, "output", "out/evaluate", "run root (directory or gs://bucket/prefix); reports go to <output>/reports")
	fs.StringVar(&o.RunID, "run_id", "", "run id in reports and BigQuery (default eval-<UTC time>)")
	fs.StringVar(&o.RunDate, "run_date", "", "run date YYYY-MM-DD, the BigQuery partition (default today, UTC); pin it to re-run a run id on another day")
	fs.StringVar(&o.TestCases, "test_cases", "", "test cases YAML (default: the built-in schemas/test_cases.yaml, 120 cases)")
	fs.StringVar(&o.PersonasPath, "personas", "", "personas YAML (default: the built-in schemas/personas.yaml)")
	fs.StringVar(&o.Persona, "persona", "", "comma-separated persona ids to evaluate (default: all)")

	fs.StringVar(&o.Generator, "generator", evaluate.GeneratorLocal, "local (in-process GoMLX) or openai (an OpenAI-compatible endpoint such as vLLM)")
	fs.StringVar(&o.GeneratorURL, "generator_url", "", "openai: base URL, e.g. http://localhost:8000/v1")
	fs.StringVar(&o.SFTModel, "sft_model", "sft", "openai: the SFT baseline's model (vLLM adapter) name")
	fs.StringVar(&o.DPOModel, "dpo_model", "{persona}", "openai: the DPO model name pattern; {persona} is replaced by the persona id")
	fs.StringVar(&o.ModelDir, "model_dir", "", "local: base Llama model directory")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "local: tokenizer.json (default <model_dir>/tokenizer.json)")
	fs.StringVar(&o.SFTAdapter, "sft_adapter", "", "local: PEFT SFT adapter merged into the base (optional)")
	fs.StringVar(&o.AdaptersDir, "adapters_dir", "trained_models", "local: directory of trained adapters <persona>_v<version>")
	fs.StringVar(&o.Version, "version", "1.0", "local: adapter version")
	fs.IntVar(&o.DecodeBatch, "generator_batch", 8, "local: requests a model decodes together (answers do not depend on it)")
	fs.IntVar(&o.Replicas, "generator_replicas", 1, "local: copies of each model per worker, decoding that many batches at once (one per CPU core helps; memory grows with it; answers do not depend on it)")
	fs.StringVar(&o.Backend, "backend", "", "local: GoMLX backend (default $GOMLX_BACKEND or the pure-Go CPU backend)")
	fs.Float64Var(&o.Temperature, "temperature", 0, "sampling temperature for both models (0 = greedy, reproducible)")
	fs.Float64Var(&o.TopP, "top_p", 1, "nucleus sampling top_p")
	fs.Float64Var(&o.PresencePenalty, "presence_penalty", 0, "OpenAI presence penalty in [-2, 2] on tokens a completion already holds, both models alike (0 = off)")
	fs.Float64Var(&o.FrequencyPenalty, "frequency_penalty", 0, "OpenAI frequency penalty in [-2, 2], per earlier occurrence, both models alike (0 = off)")
	fs.IntVar(&o.MaxTokens, "max_tokens", 512, "max completion tokens per recipe")
	fs.Int64Var(&o.Seed, "seed", 42, "sampling seed (each case derives its own; both models share it)")
	gen := llm.DefaultLimits()
	fs.Float64Var(&o.GenLimits.RPM, "generator_rpm", 600, "generator requests per minute per worker")
	fs.IntVar(&o.GenLimits.Concurrency, "generator_concurrency", 8, "generator requests in flight per worker")
	o.GenLimits.MaxBackoff = gen.MaxBackoff

	fs.StringVar(&o.Judge, "judge", evaluate.JudgeRules, "rules (offline) or gemini")
	fs.StringVar(&o.GeminiBackend, "gemini_backend", "gemini-api", "gemini-api (key in $GEMINI_API_KEY) or vertex (--project and --location, Application Default Credentials)")
	fs.StringVar(&o.Location, "location", "us-central1", "Vertex AI location")
	fs.StringVar(&o.GeminiModel, "gemini_model", "gemini-2.0-flash", "Gemini judge model")
	fs.StringVar(&o.GeminiURL, "gemini_url", "", "override the Gemini endpoint (proxies, tests)")
	judge := llm.DefaultLimits()
	fs.Float64Var(&o.JudgeLimits.RPM, "rpm", 60, "judge requests per minute per worker")
	fs.Float64Var(&o.JudgeLimits.TPM, "tpm", 0, "judge tokens per minute per worker (0 = unlimited)")
	fs.IntVar(&o.JudgeLimits.Concurrency, "concurrency", 4, "judge requests in flight per worker")
	o.JudgeLimits.MaxBackoff = judge.MaxBackoff

	fs.StringVar(&o.BQDataset, "bq_dataset", "", "BigQuery dataset to load the results into (off when empty; uses --project)")
	fs.StringVar(&o.BQTable, "bq_table", "eval_results", "BigQuery table (created if missing: partitioned by run_date, clustered by persona_id)")
	fs.StringVar(&o.BQStaging, "bq_staging", "", "gs://bucket/prefix where the load file is staged (in the dataset's location)")
	fs.StringVar(&o.BQLocation, "bq_location", "", "BigQuery dataset location (default US)")
	fs.BoolVar(&o.BQReplace, "bq_replace", false, "replace the rows of a --run_id loaded before with different rows (instead of failing)")
	fs.StringVar(&o.BQEndpoint, "bq_endpoint", "", "BigQuery API endpoint override without authentication (emulators)")
	fs.IntVar(&o.MaxRetries, "max_retries", judge.MaxRetries, "retries per call on 429, 5xx and timeouts")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "timeout of each call attempt (local generation of a long recipe on CPU can take minutes)")
	fs.IntVar(&o.BatchSize, "batch_size", 32, "cases per fan-out batch")
	fs.BoolVar(&o.NoCache, "no_cache", false, "neither read nor write the call cache")
	fs.StringVar(&o.LogLevel, "log_level", "info", "debug, info, warn or error")
	return o
}

package main

import (
	"flag"
	"time"

	"github.com/pantrypilot/recipe-dpo/beam/prepare"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/label"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
	"github.com/pantrypilot/recipe-dpo/transforms/variants"
)

// options are the launcher's flags. Beam's own (--runner, --project, --region,
// --staging_location, --temp_location, --worker_binary, --dry_run, ...) are registered by
// the Beam packages on the same flag set.
type options struct {
	Output       string
	PersonasPath string
	Persona      string
	Count        int
	Seed         int64
	PromptsPath  string

	Generator      string
	GeneratorURL   string
	GeneratorModel string
	MaxTokens      int
	TempA, TempB   float64
	TopP           float64
	Presence       float64
	Frequency      float64
	GenLimits      llm.Limits
	ModelDir       string
	DecodeBatch    int
	Replicas       int
	Tokenizer      string
	SFTAdapter     string
	Backend        string

	Labeler     string
	GroqURL     string
	GroqModel   string
	Veto        string
	JudgeLimits llm.Limits
	MaxRetries  int
	Timeout     time.Duration

	PromptStyle string
	BatchSize   int
	ShardRows   int
	NoCache     bool
	LogLevel    string
}

func registerFlags(fs *flag.FlagSet) *options {
	o := &options{}
	spec := variants.DefaultSpec()
	fs.StringVar(&o.Output, "output", "out/prepare", "run root: a local directory or gs://bucket/prefix")
	fs.StringVar(&o.PersonasPath, "personas", "", "personas YAML (default: the built-in schemas/personas.yaml)")
	fs.StringVar(&o.Persona, "persona", "", "comma-separated persona ids to run (default: all)")
	fs.IntVar(&o.Count, "count", 500, "prompts generated per persona (ignored with --prompts)")
	fs.Int64Var(&o.Seed, "seed", spec.Seed, "seed for prompt generation and per-request sampling seeds")
	fs.StringVar(&o.PromptsPath, "prompts", "", "read prompts from this JSONL or Parquet file (local or gs://) instead of generating them")

	fs.StringVar(&o.Generator, "generator", prepare.GeneratorOpenAI, "variant generator: openai (an OpenAI-compatible endpoint; key in $GENERATOR_API_KEY) or local (the GoMLX model in --model_dir, in-process)")
	fs.StringVar(&o.ModelDir, "model_dir", "", "--generator=local: Llama model directory (config.json, model.safetensors, tokenizer.json)")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "--generator=local: tokenizer.json (default <model_dir>/tokenizer.json)")
	fs.StringVar(&o.SFTAdapter, "sft_adapter", "", "--generator=local: PEFT SFT adapter merged into the model (optional)")
	fs.IntVar(&o.DecodeBatch, "generator_batch", 8, "--generator=local: requests the model decodes together (answers do not depend on it)")
	fs.IntVar(&o.Replicas, "generator_replicas", 1, "--generator=local: copies of the model per worker, decoding that many batches at once (one per CPU core helps; memory grows with it; answers do not depend on it)")
	fs.StringVar(&o.Backend, "backend", "", "--generator=local: GoMLX backend (default $GOMLX_BACKEND or the pure-Go CPU backend)")
	fs.StringVar(&o.GeneratorURL, "generator_url", "", "generator base URL, e.g. http://localhost:8000/v1 for vLLM")
	fs.StringVar(&o.GeneratorModel, "generator_model", spec.Model, "generator model; with vLLM the LoRA adapter name (e.g. sft)")
	fs.IntVar(&o.MaxTokens, "max_tokens", spec.MaxTokens, "max completion tokens per recipe")
	fs.Float64Var(&o.TempA, "temperature_a", spec.TempA, "variant A (strong persona constraints) temperature")
	fs.Float64Var(&o.TempB, "temperature_b", spec.TempB, "variant B (weak constraints) temperature")
	fs.Float64Var(&o.TopP, "top_p", spec.TopP, "nucleus sampling top_p for both variants")
	fs.Float64Var(&o.Presence, "presence_penalty", 0, "OpenAI presence penalty in [-2, 2] on tokens a completion already holds, both variants (0 = off)")
	fs.Float64Var(&o.Frequency, "frequency_penalty", 0, "OpenAI frequency penalty in [-2, 2], per earlier occurrence, both variants (0 = off)")
	gen := llm.DefaultLimits()
	gen.RPM, gen.TPM, gen.Concurrency = 600, 0, 16
	fs.Float64Var(&o.GenLimits.RPM, "generator_rpm", gen.RPM, "generator requests per minute (per worker process)")
	fs.Float64Var(&o.GenLimits.TPM, "generator_tpm", gen.TPM, "generator tokens per minute (0 = unlimited)")
	fs.IntVar(&o.GenLimits.Concurrency, "generator_concurrency", gen.Concurrency, "generator requests in flight per worker process")
	o.GenLimits.MaxBackoff = gen.MaxBackoff

	fs.StringVar(&o.Labeler, "labeler", prepare.LabelerRules, "preference judge: groq (LLM via Groq, key in $GROQ_API_KEY, with the rules veto) or rules (offline)")
	fs.StringVar(&o.GroqURL, "groq_url", prepare.DefaultGroqURL, "Groq (or any OpenAI-compatible) base URL for --labeler=groq")
	fs.StringVar(&o.GroqModel, "groq_model", prepare.DefaultGroqModel, "judge model for --labeler=groq")
	fs.StringVar(&o.Veto, "veto", label.VetoFlip, "when the LLM prefers a recipe that breaks a hard constraint over one that keeps them: flip, drop or off")
	judge := llm.DefaultLimits()
	fs.Float64Var(&o.JudgeLimits.RPM, "rpm", judge.RPM, "judge requests per minute (per worker process; Groq free tier: 30)")
	fs.Float64Var(&o.JudgeLimits.TPM, "tpm", judge.TPM, "judge tokens per minute (0 = unlimited; Groq free tier: 12000)")
	fs.IntVar(&o.JudgeLimits.Concurrency, "concurrency", judge.Concurrency, "judge requests in flight per worker process")
	o.JudgeLimits.MaxBackoff = judge.MaxBackoff

	fs.IntVar(&o.MaxRetries, "max_retries", judge.MaxRetries, "retries per LLM call on 429, 5xx and timeouts (both clients)")
	fs.DurationVar(&o.Timeout, "timeout", judge.Timeout, "timeout of each LLM request attempt (both clients)")

	fs.StringVar(&o.PromptStyle, "prompt_style", chatml.StyleNeutral, "system prompt stored in DPO examples: neutral (persona lives in the adapter) or persona")
	fs.IntVar(&o.BatchSize, "batch_size", 64, "prompts per LLM fan-out batch")
	fs.IntVar(&o.ShardRows, "shard_rows", shards.DefaultMaxRows, "max rows per Parquet shard")
	fs.BoolVar(&o.NoCache, "no_cache", false, "neither read nor write the LLM call cache under <output>/cache")
	fs.StringVar(&o.LogLevel, "log_level", "info", "debug, info, warn or error")
	return o
}

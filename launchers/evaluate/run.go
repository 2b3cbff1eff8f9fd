package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/gcpopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/pantrypilot/recipe-dpo/beam/evaluate"
	"github.com/pantrypilot/recipe-dpo/launchers/internal/beamrun"
	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/train"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/report"
)

// buildConfig turns flags into a validated configuration; it writes nothing.
func buildConfig(o *options, now time.Time) (evaluate.Config, error) {
	personasName, personasData := schemas.DefaultPersonasPath, schemas.DefaultPersonasYAML
	if o.PersonasPath != "" {
		b, err := os.ReadFile(o.PersonasPath)
		if err != nil {
			return evaluate.Config{}, fmt.Errorf("--personas: %w", err)
		}
		personasName, personasData = o.PersonasPath, b
	}
	all, err := schemas.ParsePersonas(personasData, personasName)
	if err != nil {
		return evaluate.Config{}, err
	}
	ids := schemas.PersonaIDs(all)
	var cases []schemas.TestCase
	if o.TestCases != "" {
		cases, err = schemas.LoadTestCases(o.TestCases, ids)
	} else {
		cases, err = schemas.DefaultTestCases()
	}
	if err != nil {
		return evaluate.Config{}, err
	}
	selected, err := schemas.SelectPersonas(all, o.Persona, personasName)
	if err != nil {
		return evaluate.Config{}, err
	}
	if o.Persona != "" {
		keep := schemas.PersonaIDs(selected)
		var in []schemas.TestCase
		for _, c := range cases {
			for _, id := range keep {
				if c.PersonaID == id {
					in = append(in, c)
				}
			}
		}
		cases = in
	}
	runID := o.RunID
	if runID == "" {
		runID = "eval-" + now.UTC().Format("20060102-150405")
	}
	runDate := o.RunDate
	if runDate == "" {
		runDate = now.UTC().Format("2006-01-02")
	}
	if _, err := time.Parse("2006-01-02", runDate); err != nil {
		return evaluate.Config{}, fmt.Errorf("--run_date %q: use YYYY-MM-DD", runDate)
	}
	gen, judge := o.GenLimits, o.JudgeLimits
	gen.MaxRetries, judge.MaxRetries = o.MaxRetries, o.MaxRetries
	gen.Timeout, judge.Timeout = o.Timeout, o.Timeout
	cfg := evaluate.Config{
		Output: strings.TrimSuffix(o.Output, "/"), RunID: runID, RunDate: runDate,
		Personas: selected, Cases: cases,
		Generator: evaluate.GeneratorConfig{Kind: o.Generator, URL: o.GeneratorURL, SFTModel: o.SFTModel, DPOModelPattern: o.DPOModel,
			ModelDir: o.ModelDir, Tokenizer: o.Tokenizer, SFTAdapter: o.SFTAdapter, AdaptersDir: o.AdaptersDir, Version: o.Version,
			Backend: o.Backend, Temperature: o.Temperature, TopP: o.TopP, MaxTokens: o.MaxTokens, Seed: o.Seed, Limits: gen,
			PresencePenalty: o.PresencePenalty, FrequencyPenalty: o.FrequencyPenalty,
			DecodeBatch: o.DecodeBatch, Replicas: o.Replicas},
		Judge: evaluate.JudgeConfig{Kind: o.Judge, Backend: o.GeminiBackend, Project: *gcpopts.Project, Location: o.Location,
			Model: o.GeminiModel, BaseURL: o.GeminiURL, Limits: judge},
		BatchSize: o.BatchSize, NoCache: o.NoCache,
		BigQuery: evaluate.BigQueryConfig{Project: *gcpopts.Project, Dataset: o.BQDataset, Table: o.BQTable, Staging: o.BQStaging,
			Location: o.BQLocation, Replace: o.BQReplace, Endpoint: o.BQEndpoint},
	}
	if err := cfg.Validate(); err != nil {
		return evaluate.Config{}, err
	}
	return cfg, nil
}

// run checks the inputs and the output, runs the job and prints the per-persona summary.
func run(ctx context.Context, o *options, logger *slog.Logger, stdout io.Writer) error {
	cfg, err := buildConfig(o, time.Now())
	if err != nil {
		return err
	}
	dry := beamrun.DryRun()
	if !dry {
		if cfg.Judge.Kind == evaluate.JudgeGemini && cfg.Judge.Backend == "gemini-api" &&
			os.Getenv(evaluate.EnvGeminiKey) == "" && os.Getenv(evaluate.EnvGoogleKey) == "" {
			return fmt.Errorf("--judge=gemini needs %s (or %s) in the environment, or --gemini_backend=vertex", evaluate.EnvGeminiKey, evaluate.EnvGoogleKey)
		}
		if g := cfg.Generator; g.Kind == evaluate.GeneratorLocal {
			var adapters []string
			for _, p := range cfg.Personas {
				if _, err := os.Stat(g.AdapterDir(p.ID)); err != nil {
					return fmt.Errorf("no trained adapter for %s at %s (train it with `trainer train-all`, or pass --adapters_dir)", p.ID, g.AdapterDir(p.ID))
				}
				adapters = append(adapters, g.AdapterDir(p.ID))
			}
			// The model and every adapter, read here before the job's workers load them, so a
			// wrong path or an adapter of another model fails now, not as an error row per case.
			if beamrun.LocalRunner() {
				if err := train.CheckBase(g.ModelDir, g.Tokenizer, g.SFTAdapter, adapters...); err != nil {
					return fmt.Errorf("--model_dir: %w", err)
				}
			}
		}
		if err := blob.CheckWritable(ctx, blob.Join(cfg.Output, "reports")); err != nil {
			return err
		}
	}
	logger.Info("evaluate: starting", "run_id", cfg.RunID, "cases", len(cfg.Cases), "generator", cfg.Generator.Kind, "judge", cfg.Judge.Kind)
	p, s := beam.NewPipelineWithRoot()
	evaluate.Pipeline(s, cfg)
	defer beamrun.Progress(ctx, evaluate.ProgressTasks(cfg)...)()
	res, err := beamx.RunWithMetrics(ctx, p)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	if dry || res == nil {
		return nil
	}
	b, err := blob.ReadFile(ctx, blob.Join(cfg.Output, "reports", report.SummaryFile))
	if err != nil {
		return fmt.Errorf("the job ran but wrote no summary: %w", err)
	}
	var sum report.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		return fmt.Errorf("%s: %w", report.SummaryFile, err)
	}
	printSummary(stdout, sum)
	fmt.Fprintf(stdout, "\nreport: %s\n", blob.Join(cfg.Output, "reports", report.HTMLFile))
	if sum.Overall.N == 0 {
		return errors.New("no case could be judged; see the error rows in reports/detailed_results.json")
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/pantrypilot/recipe-dpo/beam/prepare"
	"github.com/pantrypilot/recipe-dpo/launchers/internal/beamrun"
	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/train"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/prompts"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
	"github.com/pantrypilot/recipe-dpo/transforms/variants"
)

// version is the code version recorded in the manifest (-ldflags "-X main.version=...").
var version = "dev"

// buildConfig turns flags into a validated job configuration. It reads the personas and
// prompts but writes nothing, so bad input fails before any output exists.
func buildConfig(ctx context.Context, o *options) (prepare.Config, error) {
	personasName, personasData := schemas.DefaultPersonasPath, schemas.DefaultPersonasYAML
	if o.PersonasPath != "" {
		b, err := os.ReadFile(o.PersonasPath)
		if err != nil {
			return prepare.Config{}, fmt.Errorf("--personas: %w", err)
		}
		personasName, personasData = o.PersonasPath, b
	}
	all, err := schemas.ParsePersonas(personasData, personasName)
	if err != nil {
		return prepare.Config{}, err
	}
	selected, err := schemas.SelectPersonas(all, o.Persona, personasName)
	if err != nil {
		return prepare.Config{}, err
	}

	var ps []schemas.Prompt
	if o.PromptsPath != "" {
		if ps, err = readPrompts(ctx, o.PromptsPath); err != nil {
			return prepare.Config{}, err
		}
		ps = inScope(ps, all, selected)
	} else {
		if o.Count <= 0 {
			return prepare.Config{}, fmt.Errorf("--count must be > 0, got %d (or pass --prompts)", o.Count)
		}
		for _, p := range selected {
			ps = append(ps, prompts.Generate(p, o.Count, o.Seed)...)
		}
	}

	spec := variants.Spec{Model: o.GeneratorModel, MaxTokens: o.MaxTokens, Seed: o.Seed, TempA: o.TempA, TempB: o.TempB, TopP: o.TopP,
		PresencePenalty: o.Presence, FrequencyPenalty: o.Frequency}
	gen, judge := o.GenLimits, o.JudgeLimits
	gen.MaxRetries, judge.MaxRetries = o.MaxRetries, o.MaxRetries
	gen.Timeout, judge.Timeout = o.Timeout, o.Timeout
	cfg := prepare.Config{
		Output:   strings.TrimSuffix(o.Output, "/"),
		Personas: selected,
		Prompts:  ps,
		Generator: prepare.GeneratorConfig{Kind: o.Generator, URL: o.GeneratorURL, Spec: spec, Limits: gen,
			ModelDir: o.ModelDir, Tokenizer: o.Tokenizer, SFTAdapter: o.SFTAdapter, Backend: o.Backend, DecodeBatch: o.DecodeBatch,
			Replicas: o.Replicas},
		Labeler: prepare.LabelerConfig{Kind: o.Labeler, URL: o.GroqURL, Model: o.GroqModel, Veto: o.Veto,
			Limits: judge},
		PromptStyle: o.PromptStyle,
		BatchSize:   o.BatchSize,
		ShardRows:   o.ShardRows,
		NoCache:     o.NoCache,
		CodeVersion: version,
		Inputs: map[string]string{
			"personas": sha(personasData),
			"prompts":  sha(mustMarshal(ps)),
		},
		Settings: settings(),
	}
	if err := cfg.Validate(); err != nil {
		return prepare.Config{}, err
	}
	return cfg, nil
}

// readPrompts reads --prompts as JSONL or Parquet (by extension), locally or from gs://.
func readPrompts(ctx context.Context, path string) ([]schemas.Prompt, error) {
	if strings.HasSuffix(path, ".parquet") {
		ps, err := shards.ReadFile[schemas.Prompt](ctx, path)
		if err != nil {
			return nil, fmt.Errorf("--prompts: %w", err)
		}
		return ps, nil
	}
	b, err := blob.ReadFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("--prompts: %w (pass a readable .jsonl or .parquet file)", err)
	}
	ps, err := prompts.ReadPrompts(path, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("--prompts: %w", err)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("--prompts: %s holds no prompts", path)
	}
	return ps, nil
}

// inScope keeps the prompts of selected personas. Prompts of personas that exist but were not
// selected are out of this run's scope; prompts naming unknown personas stay, and the job
// dead-letters them (nothing is lost silently).
func inScope(ps []schemas.Prompt, all, selected []schemas.Persona) []schemas.Prompt {
	if len(all) == len(selected) {
		return ps
	}
	ids := schemas.PersonaIDs(selected)
	known := schemas.PersonaIDs(all)
	return slices.DeleteFunc(slices.Clone(ps), func(p schemas.Prompt) bool {
		return slices.Contains(known, p.PersonaID) && !slices.Contains(ids, p.PersonaID)
	})
}

// settings records every flag's value for the manifest. Secrets are never flags.
func settings() map[string]any {
	m := map[string]any{}
	flag.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	return m
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// run builds the configuration, checks the output is writable, runs the job, and prints the
// accounting table. It fails if any stage does not balance.
func run(ctx context.Context, o *options, logger *slog.Logger, stdout io.Writer) error {
	cfg, err := buildConfig(ctx, o)
	if err != nil {
		return err
	}
	dry := beamrun.DryRun()
	if !dry {
		// The job's workers load the model; here it runs in this process, so a wrong path
		// fails now, before anything is written (on Dataflow the path is the workers').
		if g := cfg.Generator; g.Kind == prepare.GeneratorLocal && beamrun.LocalRunner() {
			if err := train.CheckBase(g.ModelDir, g.Tokenizer, g.SFTAdapter); err != nil {
				return fmt.Errorf("--model_dir: %w", err)
			}
		}
		if err := blob.CheckWritable(ctx, cfg.Output); err != nil {
			return err
		}
		if cfg.Labeler.Kind == prepare.LabelerGroq && os.Getenv(prepare.EnvGroqKey) == "" && beamrun.LocalRunner() {
			return fmt.Errorf("--labeler=groq needs %s in the environment", prepare.EnvGroqKey)
		}
	}
	model := cfg.Generator.Spec.Model + " at " + cfg.Generator.URL
	if cfg.Generator.Kind == prepare.GeneratorLocal {
		model = cfg.Generator.ModelDir
	}
	logger.Info("prepare: starting", "personas", len(cfg.Personas), "prompts", len(cfg.Prompts),
		"output", cfg.Output, "generator", cfg.Generator.Kind, "model", model, "labeler", cfg.Labeler.Kind)

	p, s := beam.NewPipelineWithRoot()
	prepare.Pipeline(s, cfg)
	defer beamrun.Progress(ctx, prepare.ProgressTasks(cfg)...)()
	res, err := beamx.RunWithMetrics(ctx, p)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	if dry || res == nil {
		logger.Info("prepare: dry run, nothing submitted")
		return nil
	}
	m, err := readManifest(ctx, cfg.Output)
	if err != nil {
		return err
	}
	printReport(stdout, m, counters(res))
	if !m.Balanced {
		return errors.New("accounting does not balance (in != out + dead letters) for some stage; see the table above")
	}
	return nil
}

func readManifest(ctx context.Context, root string) (schemas.Manifest, error) {
	var m schemas.Manifest
	b, err := blob.ReadFile(ctx, blob.Join(root, "manifest.json"))
	if err != nil {
		return m, fmt.Errorf("the job ran but wrote no manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest.json: %w", err)
	}
	return m, nil
}

// counters sums the job's Beam counters by name.
func counters(res beam.PipelineResult) map[string]int64 {
	out := map[string]int64{}
	for _, c := range res.Metrics().AllMetrics().Counters() {
		out[c.Name()] += c.Result()
	}
	return out
}

// printReport prints the per-stage accounting table and the call statistics.
func printReport(w io.Writer, m schemas.Manifest, c map[string]int64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tin\tout\tdead\tbalanced\tdead letters by reason\t")
	for _, s := range m.Stages {
		var reasons []string
		for r, n := range s.DeadReasons {
			reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
		}
		slices.Sort(reasons)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%v\t%s\t\n", s.Stage, s.In, s.Out, s.Dead, s.Balanced, strings.Join(reasons, " "))
	}
	tw.Flush()
	agree, disagree := m.Label.Agreement[schemas.AgreementAgree], m.Label.Agreement[schemas.AgreementDisagree]
	rate := "n/a" // the rules labeller alone: nothing to agree with
	if agree+disagree > 0 {
		rate = fmt.Sprintf("%.1f%%", 100*m.Label.AgreementRate)
	}
	fmt.Fprintf(w, "\nlabel pass rate %.1f%%, LLM-vs-rules agreement %s (agree %d, disagree %d, n/a %d), vetoed %d\n",
		100*m.Label.PassRate, rate, agree, disagree, m.Label.Agreement[schemas.AgreementNA], m.Label.Vetoed)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\nLLM\tmodel\tcalls\tcache hits\tfailures\tprompt tokens\tcompletion tokens\test. cost\t")
	for _, role := range []string{"generator", "judge"} {
		u := m.Usage[role]
		cost := fmt.Sprintf("$%.4f", u.EstimatedCostUSD)
		if !u.PriceKnown {
			cost = "n/a"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", role, u.Model, c[role+"_calls"], c[role+"_cache_hits"],
			c[role+"_failures"], u.PromptTokens, u.CompletionTokens, cost)
	}
	tw.Flush()
	fmt.Fprintf(w, "retries %d\n", c["llm_retries"])
}

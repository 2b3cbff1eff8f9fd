package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/sftcorpus"
)

// phase is one stage of the demo.
type phase struct {
	name string
	run  func(ctx context.Context) error
}

// run executes the phases in order, printing each with the time the last run took as its
// estimate, and records this run's timings for the next estimate.
func run(ctx context.Context, o *options, logger *slog.Logger) error {
	personas, err := selectPersonas(o.Personas)
	if err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	for _, b := range []string{"trainer", "prepare", "evaluate"} {
		if _, err := os.Stat(filepath.Join(o.Bin, b)); err != nil {
			return fmt.Errorf("%s/%s is missing: run `make demo` (it builds the binaries) or `make build-bins`", o.Bin, b)
		}
	}
	d := &demo{o: o, personas: personas, logger: logger}
	d.modelDir = filepath.Join(o.Cache, "sft-"+d.sftKey(), "model")
	phases := []phase{{"sft", d.sftModel}, {"prepare", d.prepare}, {"dpo", d.dpo}, {"evaluate", d.evaluate}}
	timings := loadTimings(o.Cache)
	start := time.Now()
	for i, p := range phases {
		if o.Only != "" && o.Only != p.name {
			continue
		}
		est := "first run"
		if t, ok := timings[p.name]; ok {
			est = "last run took " + time.Duration(t).Round(time.Second).String()
		}
		fmt.Printf("\n== [%d/%d] %s (%s) ==\n", i+1, len(phases), p.name, est)
		t0 := time.Now()
		if err := p.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if !(p.name == "sft" && d.cachedSFT) { // a cache hit says nothing about a rebuild's time
			timings[p.name] = int64(time.Since(t0))
		}
		fmt.Printf("== %s done in %s (total %s) ==\n", p.name, time.Since(t0).Round(time.Second), time.Since(start).Round(time.Second))
	}
	saveTimings(o.Cache, timings)
	fmt.Printf("\ndemo finished in %s; everything is under %s\n", time.Since(start).Round(time.Second), o.Out)
	return nil
}

type demo struct {
	o         *options
	personas  []schemas.Persona
	logger    *slog.Logger
	modelDir  string
	cachedSFT bool
}

func selectPersonas(list string) ([]schemas.Persona, error) {
	all, err := schemas.DefaultPersonas()
	if err != nil {
		return nil, err
	}
	return schemas.SelectPersonas(all, list, schemas.DefaultPersonasPath)
}

func (d *demo) ids() string { return strings.Join(schemas.PersonaIDs(d.personas), ",") }

// sftNumerics names the trainer's numerics the cached SFT model was built with. The key below
// hashes the demo's settings, not the trainer's code, so a trainer change that alters the
// model's bytes for the same settings (another summation order, say) must bump it; otherwise
// an existing cache keeps serving the old model. v2: the rerouted gradients of 2026-12-05.
// v3: softmax's written-out gradient (2026-12-06). v4: projections' written-out backward and
// the fused SiLU (2026-12-06, later).
const sftNumerics = "v4"

// sftKey identifies the SFT model by everything it is built from, so a changed setting
// builds a new one and an unchanged one is reused.
func (d *demo) sftKey() string {
	o := d.o
	key := []any{sftNumerics, sftcorpus.Version, o.Seed, d.ids(), o.SFTExamples, o.Vocab, o.Hidden, o.Layers, o.Heads, o.KVHeads,
		o.Intermediate, o.SFTEpochs, o.SFTLearningRate, o.SFTBatch, o.SFTMaxLen, d.corpusOptions()}
	if o.SeparateSpaces { // appended only when set, so existing cached models keep their key
		key = append(key, "separate_spaces")
	}
	b, _ := json.Marshal(key)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:6])
}

// corpusOptions are the corpus defaults with the demo's compliance rates: when the prompt
// does not state the constraints, the baseline should break them more often than not, so
// that greedy decoding shows it and DPO has something to fix.
func (d *demo) corpusOptions() sftcorpus.Options {
	c := sftcorpus.DefaultOptions()
	c.WeakCompliance, c.NeutralCompliance = d.o.WeakCompliance, d.o.NeutralCompliance
	return c
}

// sftModel builds the tiny SFT model unless it is cached: corpus → tokenizer → random init →
// full-weight SFT; the finished model directory is renamed into place, so an interrupted build
// is never taken for a cached model.
func (d *demo) sftModel(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(d.modelDir, "model.safetensors")); err == nil {
		fmt.Printf("using the cached SFT model %s\n", d.modelDir)
		d.cachedSFT = true
		return nil
	}
	o := d.o
	work := filepath.Join(filepath.Dir(d.modelDir), "work")
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	exs := sftcorpus.Generate(d.personas, o.SFTExamples, o.Seed, d.corpusOptions())
	if _, err := sftcorpus.WriteShards(ctx, work, exs); err != nil {
		return err
	}
	corpus := filepath.Join(work, "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Join(sftcorpus.Texts(exs), "\n")), 0o644); err != nil {
		return err
	}
	fmt.Printf("corpus: %d examples for %d personas\n", len(exs), len(d.personas))
	tok := filepath.Join(work, "tokenizer.json")
	if err := d.exec(ctx, "trainer", "tokenizer", "train", "--input", corpus, "--vocab_size", fmt.Sprint(o.Vocab), "--output", tok,
		fmt.Sprintf("--separate_spaces=%t", o.SeparateSpaces)); err != nil {
		return err
	}
	base := filepath.Join(work, "base")
	if err := d.exec(ctx, "trainer", "init", "--output", base, "--vocab", tok, "--hidden_size", fmt.Sprint(o.Hidden),
		"--layers", fmt.Sprint(o.Layers), "--heads", fmt.Sprint(o.Heads), "--kv_heads", fmt.Sprint(o.KVHeads),
		"--intermediate_size", fmt.Sprint(o.Intermediate), "--max_position_embeddings", "2048", "--seed", fmt.Sprint(o.Seed)); err != nil {
		return err
	}
	runs := filepath.Join(work, "runs")
	// Micro-batches of up to 4 sequences, accumulated to the step's --sft_batch_size.
	micro := min(4, o.SFTBatch)
	if err := d.exec(ctx, "trainer", "train", "--mode", "sft", "--full", "--persona", sftcorpus.CorpusID, "--data_root", work,
		"--model_dir", base, "--output_dir", runs, "--epochs", fmt.Sprint(o.SFTEpochs), "--learning_rate", fmt.Sprint(o.SFTLearningRate),
		"--batch_size", fmt.Sprint(micro), "--grad_accum", fmt.Sprint(o.SFTBatch/micro), "--max_length", fmt.Sprint(o.SFTMaxLen), "--max_prompt_length", fmt.Sprint(o.SFTMaxLen/2),
		"--warmup_ratio", "0.05", "--seed", fmt.Sprint(o.Seed), "--logging_steps", "20", "--save_steps", "0"); err != nil {
		return err
	}
	trained := filepath.Join(runs, sftcorpus.CorpusID+"_v1.0")
	if _, err := os.Stat(filepath.Join(trained, "model.safetensors")); err != nil {
		return fmt.Errorf("the SFT run wrote no model: %w", err)
	}
	return os.Rename(trained, d.modelDir)
}

func (d *demo) prepare(ctx context.Context) error {
	o := d.o
	return d.exec(ctx, "prepare", "--output", o.Out, "--generator", "local", "--model_dir", d.modelDir,
		"--labeler", "rules", "--persona", d.ids(), "--count", fmt.Sprint(o.Count), "--seed", fmt.Sprint(o.Seed),
		"--max_tokens", fmt.Sprint(o.MaxTokens), "--generator_concurrency", d.concurrency(), "--generator_replicas", fmt.Sprint(o.Replicas), "--timeout", "10m",
		"--temperature_a", fmt.Sprint(o.TempA), "--temperature_b", fmt.Sprint(o.TempB),
		"--presence_penalty", fmt.Sprint(o.PresencePenalty), "--frequency_penalty", fmt.Sprint(o.FrequencyPenalty))
}

func (d *demo) dpo(ctx context.Context) error {
	o := d.o
	return d.exec(ctx, "trainer", "train-all", "--mode", "dpo", "--data_root", o.Out, "--model_dir", d.modelDir,
		"--output_dir", filepath.Join(o.Out, "trained_models"), "--epochs", fmt.Sprint(o.DPOEpochs),
		"--learning_rate", fmt.Sprint(o.DPOLearningRate), "--beta", fmt.Sprint(o.DPOBeta), "--loss_type", o.DPOLossType, "--label_smoothing", fmt.Sprint(o.LabelSmoothing), "--rpo_alpha", fmt.Sprint(o.RPOAlpha), "--lora_r", fmt.Sprint(o.LoRAR),
		"--lora_alpha", fmt.Sprint(o.LoRAR), "--target_modules", o.TargetModules, "--batch_size", "4", "--grad_accum", "1", "--seed", fmt.Sprint(o.Seed), "--parallel", fmt.Sprint(o.DPOParallel),
		"--logging_steps", "5", "--save_steps", "0")
}

func (d *demo) evaluate(ctx context.Context) error {
	o := d.o
	args := []string{"--output", o.Out, "--run_id", fmt.Sprintf("demo-seed%d", o.Seed), "--generator", "local",
		"--model_dir", d.modelDir, "--adapters_dir", filepath.Join(o.Out, "trained_models"), "--judge", "rules",
		"--persona", d.ids(), "--max_tokens", fmt.Sprint(o.MaxTokens), "--seed", fmt.Sprint(o.Seed),
		"--generator_concurrency", d.concurrency(), "--generator_replicas", fmt.Sprint(o.Replicas), "--timeout", "10m",
		"--presence_penalty", fmt.Sprint(o.PresencePenalty), "--frequency_penalty", fmt.Sprint(o.FrequencyPenalty)}
	if o.TestCases != "" {
		args = append(args, "--test_cases", o.TestCases)
	}
	return d.exec(ctx, "evaluate", args...)
}

// validate checks, before any phase runs, the settings a later phase would refuse only after
// the SFT model and the prepare job had taken minutes; each message names the demo flag.
func (o *options) validate() error {
	var errs []error
	if o.SFTBatch < 1 || (o.SFTBatch > 4 && o.SFTBatch%4 != 0) {
		// The SFT run accumulates micro-batches of 4 (see sftModel).
		errs = append(errs, fmt.Errorf("--sft_batch_size (%d) must be 1 to 4 or a multiple of 4", o.SFTBatch))
	}
	if o.Replicas < 1 {
		errs = append(errs, fmt.Errorf("--generator_replicas (%d) must be ≥ 1", o.Replicas))
	}
	if o.DPOParallel < 1 {
		errs = append(errs, fmt.Errorf("--dpo_parallel (%d) must be ≥ 1", o.DPOParallel))
	}
	if err := llm.ValidatePenalties(o.PresencePenalty, o.FrequencyPenalty); err != nil {
		errs = append(errs, err)
	}
	dpo := llama.DPOConfig{Beta: o.DPOBeta, LossType: llama.LossType(o.DPOLossType), LabelSmoothing: o.LabelSmoothing, RPOAlpha: o.RPOAlpha}
	if err := dpo.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--dpo_beta, --dpo_loss_type, --dpo_label_smoothing, --rpo_alpha: %w", err))
	}
	return errors.Join(errs...)
}

// concurrency is the generator concurrency of prepare and evaluate: enough batches in flight
// to keep every model copy busy.
func (d *demo) concurrency() string { return fmt.Sprint(max(2, d.o.Replicas)) }

// exec runs one of the project's binaries with the demo's output attached.
func (d *demo) exec(ctx context.Context, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(d.o.Bin, bin), args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	d.logger.Debug("demo: exec", "cmd", cmd.String())
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", bin, strings.Join(args[:min(2, len(args))], " "), err)
	}
	return nil
}

func loadTimings(dir string) map[string]int64 {
	t := map[string]int64{}
	if b, err := os.ReadFile(filepath.Join(dir, "timings.json")); err == nil {
		json.Unmarshal(b, &t)
	}
	return t
}

func saveTimings(dir string, t map[string]int64) {
	if b, err := json.Marshal(t); err == nil {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "timings.json"), b, 0o644)
	}
}

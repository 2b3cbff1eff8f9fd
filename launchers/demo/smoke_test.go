package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/transforms/report"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// smokePersona is the one persona of the smoke run: a restricted one, so the rules
// labeller and judge have constraints to check.
const smokePersona = "persona_b_indian_veg"

// TestSmokeChain runs the whole demo on a scale that takes a minute or two: the real
// binaries (built here from this checkout), a tiny SFT model trained from the synthetic
// corpus, prepare on prism with the in-process generator, a DPO step or two, and evaluation
// of three test cases. It checks the layout, the row schemas and the accounting of every
// stage, so the chained path cannot silently break. The model is far too small to be good:
// it asserts plumbing, not quality (make demo measures that).
func TestSmokeChain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs every stage; skipped with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build the binaries with")
	}
	ctx := context.Background()
	tmp := t.TempDir()
	bin, out, cache := filepath.Join(tmp, "bin"), filepath.Join(tmp, "out"), filepath.Join(tmp, "cache")

	build := exec.Command("go", "build", "-tags", "noxla", "-o", bin+string(filepath.Separator),
		"./trainer/cmd/trainer", "./launchers/prepare", "./launchers/evaluate")
	build.Dir = filepath.Join("..", "..")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}

	// Three of the persona's built-in cases, one per kind of stress.
	all, err := schemas.DefaultTestCases()
	if err != nil {
		t.Fatal(err)
	}
	var cases []schemas.TestCase
	for _, c := range schemas.TestCasesFor(all, smokePersona) {
		if len(cases) < 3 && (len(cases) == 0 || cases[len(cases)-1].Category != c.Category) {
			cases = append(cases, c)
		}
	}
	casesPath := filepath.Join(tmp, "cases.yaml")
	yb, err := yaml.Marshal(map[string]any{"test_cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(casesPath, yb, 0o644); err != nil {
		t.Fatal(err)
	}

	const count = 12
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	o := registerFlags(fs)
	// The smallest model that writes parseable recipes often enough for a few pairs: a
	// 2-layer, 64-wide Llama trained for 40 epochs on 200 examples (about a minute).
	if err := fs.Parse([]string{"--out", out, "--cache", cache, "--bin", bin, "--persona", smokePersona,
		"--sft_examples", "200", "--sft_epochs", "40", "--sft_learning_rate", "3e-3", "--hidden_size", "64", "--layers", "2",
		"--heads", "2", "--kv_heads", "1", "--intermediate_size", "192", "--vocab_size", "512",
		"--count", "12", "--dpo_epochs", "1", "--test_cases", casesPath}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, o, logger); err != nil {
		t.Fatalf("demo: %v", err)
	}

	// The SFT model is cached and complete.
	sftDir := filepath.Join(cache, "sft-"+(&demo{o: o, personas: mustPersonas(t)}).sftKey(), "model")
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		requireFile(t, filepath.Join(sftDir, f))
	}

	// prepare: every stage balances, and the rows on disk are what the manifest counts.
	var m schemas.Manifest
	readJSON(t, filepath.Join(out, "manifest.json"), &m)
	if !m.Balanced {
		t.Errorf("manifest: not balanced: %+v", m.Stages)
	}
	stages := map[string]schemas.StageSummary{}
	for _, s := range m.Stages {
		stages[s.Stage] = s
		if s.In != s.Out+s.Dead {
			t.Errorf("stage %s: in %d != out %d + dead %d", s.Stage, s.In, s.Out, s.Dead)
		}
	}
	if p, g := stages["prompts"], stages["generate"]; p.In != count || g.In != 2*count {
		t.Errorf("prompts in %d, generate in %d; want %d and %d", p.In, g.In, count, 2*count)
	}
	label := stages["label"]
	if label.In != count || label.Out == 0 {
		t.Fatalf("label: in %d, out %d; want %d in and at least one pair (the tiny model wrote no parseable pair: see %s)", label.In, label.Out, count, out)
	}
	variants := readRows[schemas.Variant](t, shards.PersonaDir(out, shards.DirVariants, smokePersona))
	pairs := readRows[schemas.PreferencePair](t, shards.PersonaDir(out, shards.DirPreferencePairs, smokePersona))
	dpo := readRows[schemas.DPOExample](t, shards.PersonaDir(out, shards.DirDPOFormatted, smokePersona))
	dead := readRows[schemas.DeadLetter](t, filepath.Join(out, "data", "dead_letters", "label"))
	if len(variants) != 2*count || int64(len(pairs)) != label.Out || int64(len(dpo)) != label.Out || int64(len(dead)) != label.Dead {
		t.Errorf("rows: %d variants, %d pairs, %d DPO examples, %d label dead letters; manifest says %d, %d, %d, %d",
			len(variants), len(pairs), len(dpo), len(dead), 2*count, label.Out, label.Out, label.Dead)
	}
	for _, e := range dpo {
		if err := e.Validate(); err != nil {
			t.Errorf("DPO example %s: %v", e.ID, err)
		}
	}
	for _, d := range dead {
		if d.Reason == "" || d.Stage != schemas.StageLabel {
			t.Errorf("dead letter without a reason or stage: %+v", d)
		}
	}

	// dpo: a PEFT adapter that loads against the SFT model, and its metrics.
	adapter := filepath.Join(out, "trained_models", smokePersona+"_v1.0")
	mc, err := model.LoadConfig(sftDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peft.Load(adapter, mc); err != nil {
		t.Errorf("the DPO adapter does not load: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(adapter, "metrics.jsonl")); err != nil || !bytes.Contains(b, []byte(`"rewards/accuracies"`)) {
		t.Errorf("metrics.jsonl: %v, %.200q; want DPO metrics lines", err, b)
	}

	// evaluate: one judged row per case, the summary and the HTML report.
	var det report.Detailed
	readJSON(t, filepath.Join(out, "reports", "detailed_results.json"), &det)
	if det.Cases != len(cases) || len(det.Results) != len(cases) {
		t.Fatalf("detailed_results: %d cases, %d rows; want %d", det.Cases, len(det.Results), len(cases))
	}
	for i, r := range det.Results {
		if r.PersonaID != smokePersona || r.JudgeModel != "rules" || r.SFTOutput == "" || r.DPOOutput == "" || r.Winner == "" {
			t.Errorf("result %d incomplete: %+v", i, r)
		}
		if err := r.Validate(); err != nil {
			t.Errorf("result %d: %v", i, err)
		}
	}
	var sum report.Summary
	readJSON(t, filepath.Join(out, "reports", report.SummaryFile), &sum)
	if b := sum.Overall; b.N != len(cases) || b.Wins+b.Losses+b.Ties+b.Errors != b.N {
		t.Errorf("summary: n %d = wins %d + losses %d + ties %d + errors %d? want n = %d", b.N, b.Wins, b.Losses, b.Ties, b.Errors, len(cases))
	}
	if b, err := os.ReadFile(filepath.Join(out, "reports", report.HTMLFile)); err != nil || !strings.Contains(string(b), smokePersona) {
		t.Errorf("HTML report: %v, or it does not name the persona", err)
	}
}

func mustPersonas(t *testing.T) []schemas.Persona {
	t.Helper()
	ps, err := selectPersonas(smokePersona)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func requireFile(t *testing.T, path string) {
	t.Helper()
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Errorf("%s: missing or empty (%v)", path, err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readRows[T any](t *testing.T, dir string) []T {
	t.Helper()
	rows, err := shards.ReadDir[T](context.Background(), dir)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return rows
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/pantrypilot/recipe-dpo/beam/evaluate"
	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge/geminitest"
	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
	"github.com/pantrypilot/recipe-dpo/transforms/localgen/localgentest"
	"github.com/pantrypilot/recipe-dpo/transforms/report"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

func TestMain(m *testing.M) {
	beamlog.LogLevel = "warn"
	ptest.Main(m)
}

func parse(t *testing.T, args ...string) *options {
	t.Helper()
	fs := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	o := registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

func runJob(t *testing.T, o *options) (report.Summary, string) {
	t.Helper()
	var out strings.Builder
	if err := run(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	b, err := os.ReadFile(filepath.Join(o.Output, "reports", report.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var s report.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s, out.String()
}

// TestEvaluateLocalRules runs the job fully offline: in-process generation from a tiny model
// with per-persona adapters, judged by the rules judge in both orders.
func TestEvaluateLocalRules(t *testing.T) {
	dir, mc := localgentest.TinyModelDir(t)
	adapters := t.TempDir()
	personas := []string{"persona_b_indian_veg", "persona_f_chinese_keto"}
	for i, p := range personas {
		a := peft.NewRandom(peft.NewConfig(4, 8, 0, "q_proj", "v_proj"), mc, int64(i))
		for _, b := range a.B {
			for j := range b {
				b[j] = 0.3
			}
		}
		if err := peft.Save(filepath.Join(adapters, p+"_v1.0"), a, mc); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"--output", out, "--run_id", "r1", "--model_dir", dir, "--adapters_dir", adapters,
		"--persona", strings.Join(personas, ","), "--max_tokens", "8"}
	s, printed := runJob(t, parse(t, args...))
	if s.Overall.N+s.Overall.Errors != 40 || s.Overall.Errors != 0 {
		t.Errorf("overall n=%d errors=%d, want 40 judged", s.Overall.N, s.Overall.Errors)
	}
	if len(s.PerPersona) != 2 || len(s.PerCategory) != 4 {
		t.Errorf("per persona %d, per category %d; want 2 and 4", len(s.PerPersona), len(s.PerCategory))
	}
	for _, w := range []string{"persona_b_indian_veg", "overall", "win rate", "evaluation_report.html"} {
		if !strings.Contains(printed, w) {
			t.Errorf("printed summary lacks %q:\n%s", w, printed)
		}
	}
	ctx := context.Background()
	rows, err := shards.ReadDir[schemas.EvalResult](ctx, filepath.Join(out, evaluate.DirResults))
	if err != nil || len(rows) != 40 {
		t.Fatalf("result rows = %d, %v; want 40", len(rows), err)
	}
	for _, r := range rows {
		if r.RunID != "r1" || r.JudgeModel != "rules" || r.SFTOutput == "" {
			t.Fatalf("row %+v: want run r1, rules judge, outputs", r)
		}
	}
	for _, f := range []string{report.DetailedFile, report.HTMLFile} {
		if _, err := os.Stat(filepath.Join(out, "reports", f)); err != nil {
			t.Error(err)
		}
	}
}

const (
	compliant = `{"title":"Palak Tofu","cuisine":"Indian","servings":2,"ingredients":[{"name":"firm tofu","quantity":"300 g"},` +
		`{"name":"spinach","quantity":"200 g"},{"name":"cumin seeds","quantity":"1 tsp"},{"name":"garlic","quantity":"2 cloves"}],` +
		`"steps":["Sear the tofu.","Wilt the spinach with cumin and garlic.","Combine."],"dietary_tags":["vegan"]}`
	violating = `{"title":"Butter Chicken with Rice","cuisine":"Indian","servings":2,"ingredients":[{"name":"chicken thigh","quantity":"400 g"},` +
		`{"name":"butter","quantity":"2 tbsp"},{"name":"white rice","quantity":"1 cup"},{"name":"soy sauce","quantity":"1 tbsp"}],` +
		`"steps":["Brown the chicken in butter.","Simmer.","Serve with rice."],"dietary_tags":[]}`
)

// TestEvaluateOpenAIGemini runs the production shape against real-protocol fakes: vLLM-style
// model names per persona and the Gemini API judge (with a 429 to retry).
func TestEvaluateOpenAIGemini(t *testing.T) {
	t.Setenv("GEMINI_API_KEY", "gemini-secret")
	gen := llmtest.Start(t, llmtest.Config{Responder: func(r llmtest.ChatRequest) (string, *llmtest.Fault) {
		if r.Model == "sft" {
			return violating, nil
		}
		return compliant, nil
	}})
	judge := geminitest.Start(t, geminitest.Config{APIKey: "gemini-secret", Responder: func(r geminitest.Request) (string, *geminitest.Fault) {
		text := r.LastUserText()
		a := text[strings.Index(text, "<recipe_a>"):strings.Index(text, "</recipe_a>")]
		winner, sa, sb := "A", 9, 2
		if strings.Contains(a, "chicken") {
			winner, sa, sb = "B", 2, 9
		}
		sc := func(v int) string {
			return fmt.Sprintf(`{"persona_alignment":%d,"constraint_compliance":%d,"preferred_ingredients":%d,"recipe_quality":%d,"overall_suitability":%d}`, v, v, v, v, v)
		}
		return fmt.Sprintf(`{"scores_a":%s,"scores_b":%s,"winner":%q,"confidence":"high","reasoning":"one breaks the diet"}`, sc(sa), sc(sb), winner), nil
	}})
	judge.Enqueue(geminitest.RateLimited(time.Second))
	out := filepath.Join(t.TempDir(), "run")
	s, _ := runJob(t, parse(t, "--output", out, "--run_id", "r2", "--generator", "openai", "--generator_url", gen.URL,
		"--judge", "gemini", "--gemini_url", judge.URL, "--persona", "persona_b_indian_veg", "--rpm", "6000"))
	if s.Overall.N != 20 || s.Overall.Wins != 20 || *s.Overall.WinRate != 1 {
		t.Errorf("overall = n %d, wins %d; want 20 of 20", s.Overall.N, s.Overall.Wins)
	}
	if v := s.Overall.ViolationRate; v.SFT == nil || *v.SFT != 1 || v.DPO == nil || *v.DPO != 0 {
		t.Errorf("violation rates = %+v, want sft 1, dpo 0", v)
	}
	if got := gen.RequestsFor("persona_b_indian_veg") + gen.RequestsFor("sft"); got != 40 {
		t.Errorf("generator requests = %d, want 40 (20 cases × 2 models)", got)
	}
	if got := judge.Requests(); got != 41 { // 20 cases × 2 orders + one 429
		t.Errorf("judge requests = %d, want 41", got)
	}
	files, _ := blob.List(context.Background(), out)
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), "gemini-secret") {
			t.Errorf("%s contains the API key", f)
		}
	}
}

func TestEvaluateBadInput(t *testing.T) {
	// A persona's adapter directory, for the cases that get past the adapters' presence
	// check to the model's; and an adapter trained for a wider model than the tiny one.
	onlyDirs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(onlyDirs, "persona_b_indian_veg_v1.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	modelDir, mc := localgentest.TinyModelDir(t)
	wider, foreign := mc, t.TempDir()
	wider.HiddenSize, wider.HeadDim = 2*mc.HiddenSize, 0
	if err := peft.Save(filepath.Join(foreign, "persona_b_indian_veg_v1.0"), peft.NewRandom(peft.NewConfig(4, 8, 0, "q_proj"), wider, 1), wider); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--persona", "persona_b_indian_veg", "--model_dir", filepath.Join(t.TempDir(), "no-model"), "--adapters_dir", onlyDirs}, "--model_dir: tokenizer"},
		{[]string{"--persona", "persona_b_indian_veg", "--model_dir", modelDir, "--adapters_dir", foreign}, "adapter does not fit this base model"},
		{[]string{"--persona", "persona_z"}, "known personas"},
		{[]string{"--generator", "gpt"}, "--generator"},
		{[]string{"--judge", "gemini", "--gemini_backend", "vertex"}, "--project"},
		{[]string{"--model_dir", t.TempDir(), "--adapters_dir", t.TempDir()}, "no trained adapter"},
		{[]string{"--test_cases", filepath.Join(t.TempDir(), "nope.yaml")}, "nope.yaml"},
		{[]string{"--generator_batch", "0"}, "--generator_batch (0) must be ≥ 1"},
		{[]string{"--presence_penalty", "3"}, "--presence_penalty (3) must be in [-2, 2]"},
		{[]string{"--generator_replicas", "0"}, "--generator_replicas (0) must be ≥ 1"},
		{[]string{"--frequency_penalty", "-2.5"}, "--frequency_penalty (-2.5) must be in [-2, 2]"},
	}
	for _, tc := range tests {
		out := filepath.Join(t.TempDir(), "run")
		err := run(context.Background(), parse(t, append([]string{"--output", out}, tc.args...)...), slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one containing %q", tc.args, err, tc.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%v: output written for rejected input", tc.args)
		}
	}
}

// BenchmarkJudgeFanOut runs the evaluation job against a generator and a Gemini endpoint
// with 100 ms latency each, the judge limited to 600 rpm, and reports the judge's achieved
// request rate ÷ the limit (target ≥ 0.9). Generation is unlimited, so the judge stage
// dominates the run.
func BenchmarkJudgeFanOut(b *testing.B) {
	b.Setenv("GEMINI_API_KEY", "k")
	const latency = 100 * time.Millisecond
	const rpm = 600.0
	gen := llmtest.Start(b, llmtest.Config{Latency: latency, Responder: func(r llmtest.ChatRequest) (string, *llmtest.Fault) {
		if r.Model == "sft" {
			return violating, nil // distinct answers, so the two judging orders are distinct calls
		}
		return compliant, nil
	}})
	verdict := `{"scores_a":{"persona_alignment":5,"constraint_compliance":5,"preferred_ingredients":5,"recipe_quality":5,"overall_suitability":5},` +
		`"scores_b":{"persona_alignment":6,"constraint_compliance":6,"preferred_ingredients":6,"recipe_quality":6,"overall_suitability":6},` +
		`"winner":"B","confidence":"high","reasoning":"b"}`
	judge := geminitest.Start(b, geminitest.Config{APIKey: "k", Latency: latency,
		Responder: func(geminitest.Request) (string, *geminitest.Fault) { return verdict, nil }})
	for range b.N {
		fs := flag.NewFlagSet("evaluate", flag.ContinueOnError)
		o := registerFlags(fs)
		if err := fs.Parse([]string{"--output", b.TempDir(), "--run_id", "bench", "--generator", "openai", "--generator_url", gen.URL,
			"--generator_rpm", "100000", "--generator_concurrency", "64", "--judge", "gemini", "--gemini_url", judge.URL,
			"--rpm", fmt.Sprint(rpm), "--concurrency", "32", "--batch_size", "120"}); err != nil {
			b.Fatal(err)
		}
		before := judge.Requests()
		start := time.Now()
		if err := run(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start).Seconds()
		calls := float64(judge.Requests() - before)
		b.ReportMetric(calls, "judge_calls")
		b.ReportMetric(calls/elapsed/(rpm/60), "ratio_to_limit")
	}
}

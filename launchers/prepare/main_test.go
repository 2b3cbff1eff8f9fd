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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// TestMain runs the real main when re-executed by exit-code tests, else the tests on prism.
func TestMain(m *testing.M) {
	if os.Getenv("PREPARE_TEST_MAIN") == "1" {
		os.Args = append([]string{os.Args[0]}, strings.Split(os.Getenv("PREPARE_TEST_ARGS"), "\x1f")...)
		main()
		os.Exit(0)
	}
	beamlog.LogLevel = "warn"
	ptest.Main(m)
}

// compliant and violating are the two recipes the fake generator writes: variant A's keeps
// every persona's constraints, variant B's breaks every restricted persona's.
const (
	compliant = `{"title":"Garlic Tofu with Bok Choy","cuisine":"Asian","servings":2,` +
		`"ingredients":[{"name":"firm tofu","quantity":"400 g"},{"name":"garlic","quantity":"3 cloves"},` +
		`{"name":"ginger","quantity":"1 tbsp"},{"name":"bok choy","quantity":"2 heads"},{"name":"sesame oil","quantity":"1 tbsp"}],` +
		`"steps":["Press and cube the tofu.","Sear it in sesame oil.","Add garlic, ginger and bok choy; stir-fry 3 minutes."],` +
		`"dietary_tags":["vegan","gluten-free"]}`
	violating = `{"title":"Chicken Fried Rice","cuisine":"Chinese","servings":2,` +
		`"ingredients":[{"name":"chicken thigh","quantity":"300 g"},{"name":"white rice","quantity":"2 cups"},` +
		`{"name":"soy sauce","quantity":"3 tbsp"},{"name":"butter","quantity":"1 tbsp"},{"name":"wheat flour","quantity":"1 tbsp"}],` +
		`"steps":["Cook the rice.","Brown the chicken in butter.","Fry everything with soy sauce."],"dietary_tags":[]}`
)

// generatorResponder answers variant A (its system prompt lists forbidden ingredients or
// restrictions) with the compliant recipe and variant B with the violating one; requests
// whose user text carries a "case:" marker misbehave as the marker says.
func generatorResponder(state *faultState) llmtest.Responder {
	return func(req llmtest.ChatRequest) (string, *llmtest.Fault) {
		if f := state.fault("gen", req); f != nil {
			return "", f
		}
		if strings.Contains(req.Text(), "case:garbage") {
			return "Sorry, I can only describe this dish in prose.", nil
		}
		if strings.Contains(req.Messages[0].Content, "You are a personal chef") {
			return compliant, nil
		}
		return violating, nil
	}
}

// judgeResponder prefers the recipe without chicken, unless the request says
// "case:judge-prefers-violation" (to exercise the veto).
func judgeResponder(state *faultState) llmtest.Responder {
	return func(req llmtest.ChatRequest) (string, *llmtest.Fault) {
		if f := state.fault("judge", req); f != nil {
			return "", f
		}
		text := req.Messages[len(req.Messages)-1].Content
		a := text[strings.Index(text, "<recipe_a>"):strings.Index(text, "</recipe_a>")]
		winner := "A"
		if strings.Contains(a, "chicken") {
			winner = "B"
		}
		if strings.Contains(text, "case:judge-prefers-violation") {
			winner = map[string]string{"A": "B", "B": "A"}[winner]
		}
		if strings.Contains(text, "case:judge-garbage") {
			return `{"winner": "maybe"}`, nil
		}
		good := `{"dietary_compliance": 9, "forbidden_avoided": 10, "cuisine_alignment": 7, "persona_match": 8}`
		bad := `{"dietary_compliance": 1, "forbidden_avoided": 0, "cuisine_alignment": 6, "persona_match": 2}`
		sa, sb := good, bad
		if winner == "B" {
			sa, sb = bad, good
		}
		return fmt.Sprintf(`{"scores_a": %s, "scores_b": %s, "winner": %q, "confidence": "high", "reasoning": "One recipe breaks the diet."}`, sa, sb, winner), nil
	}
}

// faultState scripts faults by "case:" markers: some fail once, some always.
type faultState struct {
	mu   sync.Mutex
	seen map[string]int
}

func (s *faultState) fault(role string, req llmtest.ChatRequest) *llmtest.Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	text := req.Text()
	key := role + "|" + text
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	s.seen[key]++
	n := s.seen[key]
	has := func(m string) bool { return strings.Contains(text, "case:"+m) }
	switch {
	case role == "gen" && has("gen-429-once") && n == 1:
		return llmtest.RateLimited(time.Second)
	case role == "gen" && has("gen-500-once") && n == 1:
		return llmtest.ServerError()
	case role == "gen" && has("gen-500-always") && strings.Contains(req.Messages[0].Content, "personal chef"):
		return llmtest.ServerError()
	case role == "gen" && has("gen-slow-always") && !strings.Contains(req.Messages[0].Content, "personal chef"):
		return llmtest.Slow(3 * time.Second)
	case role == "judge" && has("judge-json-validate"):
		return llmtest.JSONValidateFailed()
	case role == "judge" && has("judge-invalid-json"):
		return llmtest.InvalidJSON()
	case role == "judge" && has("judge-429-once") && n == 1:
		return llmtest.RateLimited(time.Second)
	}
	return nil
}

type fakes struct {
	gen, judge *llmtest.Server
}

func startFakes(t *testing.T) fakes {
	t.Helper()
	t.Setenv("GENERATOR_API_KEY", "gen-secret-key")
	t.Setenv("GROQ_API_KEY", "groq-secret-key")
	st := &faultState{}
	return fakes{
		gen:   llmtest.Start(t, llmtest.Config{APIKey: "gen-secret-key", Responder: generatorResponder(st), Models: []string{"sft"}}),
		judge: llmtest.Start(t, llmtest.Config{APIKey: "groq-secret-key", Responder: judgeResponder(st)}),
	}
}

// parse builds options from launcher flags on a private flag set.
func parse(t *testing.T, args ...string) *options {
	t.Helper()
	fs := flag.NewFlagSet("prepare", flag.ContinueOnError)
	o := registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

func (f fakes) args(output string, extra ...string) []string {
	return append([]string{
		"--output", output, "--generator_url", f.gen.URL, "--labeler", "groq", "--groq_url", f.judge.URL,
		"--rpm", "6000", "--tpm", "0", "--generator_rpm", "6000", "--concurrency", "8", "--max_retries", "2", "--timeout", "1s",
		"--batch_size", "4",
	}, extra...)
}

func runJob(t *testing.T, o *options) (schemas.Manifest, string) {
	t.Helper()
	var out strings.Builder
	if err := run(context.Background(), o, discardLogger(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	m, err := readManifest(context.Background(), o.Output)
	if err != nil {
		t.Fatal(err)
	}
	return m, out.String()
}

func stage(m schemas.Manifest, name string) schemas.StageSummary {
	for _, s := range m.Stages {
		if s.Stage == name {
			return s
		}
	}
	return schemas.StageSummary{}
}

func TestPrepareEndToEndAndWarmCache(t *testing.T) {
	f := startFakes(t)
	out := filepath.Join(t.TempDir(), "run")
	o := parse(t, f.args(out, "--persona", "persona_b_indian_veg,persona_f_chinese_keto", "--count", "5")...)
	m, report := runJob(t, o)
	t.Logf("report:\n%s", report)

	if !m.Balanced {
		t.Fatalf("manifest not balanced: %+v", m.Stages)
	}
	want := map[string][3]int64{ // in, out, dead
		schemas.StagePrompts:  {10, 10, 0},
		schemas.StageGenerate: {20, 20, 0},
		schemas.StageLabel:    {10, 10, 0},
		schemas.StageFormat:   {10, 10, 0},
	}
	for st, w := range want {
		s := stage(m, st)
		if got := [3]int64{s.In, s.Out, s.Dead}; got != w {
			t.Errorf("stage %s in/out/dead = %v, want %v", st, got, w)
		}
	}
	if got := f.gen.Requests(); got != 20 {
		t.Errorf("generator requests = %d, want 20", got)
	}
	if got := f.judge.Requests(); got != 10 {
		t.Errorf("judge requests = %d, want 10", got)
	}
	if m.Label.AgreementRate != 1 || m.Label.PassRate != 1 {
		t.Errorf("label stats = %+v, want pass rate 1 and agreement 1", m.Label)
	}
	for _, s := range []string{"generate", "label", "balanced", "pass rate 100.0%", "agreement 100.0%", "judge"} {
		if !strings.Contains(report, s) {
			t.Errorf("report lacks %q:\n%s", s, report)
		}
	}

	ctx := context.Background()
	exs, err := shards.ReadDir[schemas.DPOExample](ctx, shards.PersonaDir(out, shards.DirDPOFormatted, "persona_b_indian_veg"))
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 5 {
		t.Fatalf("persona_b examples = %d, want 5", len(exs))
	}
	for _, ex := range exs {
		if err := ex.Validate(); err != nil {
			t.Error(err)
		}
		if !strings.Contains(ex.Chosen, "tofu") || !strings.Contains(ex.Rejected, "chicken") {
			t.Errorf("example %s: chosen/rejected the wrong way round", ex.ID)
		}
		if strings.Contains(ex.Prompt, "Vegetarian") || strings.Contains(ex.Prompt, "personal chef") {
			t.Errorf("example %s: prompt is not persona-neutral: %q", ex.ID, ex.Prompt)
		}
	}
	pairs, err := shards.ReadDir[schemas.PreferencePair](ctx, shards.PersonaDir(out, shards.DirPreferencePairs, "persona_f_chinese_keto"))
	if err != nil || len(pairs) != 5 {
		t.Fatalf("persona_f pairs = %d, %v; want 5", len(pairs), err)
	}
	if p := pairs[0]; p.ChosenVariant != "A" || p.RulesVerdict != "A" || p.Agreement != schemas.AgreementAgree || len(p.RejectedViolations) == 0 {
		t.Errorf("pair = %+v, want A chosen, rules agree, rejected violations listed", p)
	}

	// Warm cache: a second run makes no calls and writes identical shards.
	_, report2 := runJob(t, parse(t, f.args(out, "--persona", "persona_b_indian_veg,persona_f_chinese_keto", "--count", "5")...))
	m2, _ := readManifest(ctx, out)
	if got := f.gen.Requests() + f.judge.Requests(); got != 30 {
		t.Errorf("requests after warm re-run = %d, want still 30 (all cached)", got)
	}
	if !slices.Equal(hashes(m), hashes(m2)) {
		t.Errorf("shards differ on the cached re-run:\n%v\n%v", hashes(m), hashes(m2))
	}
	if !strings.Contains(report2, "generator") {
		t.Errorf("second report:\n%s", report2)
	}
	assertNoSecrets(t, out)
}

func hashes(m schemas.Manifest) []string {
	var hs []string
	for _, s := range m.Shards {
		hs = append(hs, s.Path+"="+s.SHA256)
	}
	return hs
}

// assertNoSecrets checks no output file holds an API key.
func assertNoSecrets(t *testing.T, root string) {
	t.Helper()
	files, err := blob.List(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		b, err := blob.ReadFile(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"gen-secret-key", "groq-secret-key"} {
			if strings.Contains(string(b), k) {
				t.Errorf("%s contains the API key %q", p, k)
			}
		}
	}
}

func writePrompts(t *testing.T, cases ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "prompts.jsonl")
	var b strings.Builder
	for i, c := range cases {
		persona := "persona_b_indian_veg"
		if c == "unknown-persona" {
			persona = "persona_z_nobody"
		}
		pr := schemas.Prompt{PromptID: fmt.Sprintf("t-%02d", i), PersonaID: persona,
			Request: fmt.Sprintf("Make dinner with paneer and spinach. case:%s", c)}
		if c == "empty-request" {
			pr.Request = ""
		}
		json.NewEncoder(&b).Encode(pr)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrepareFaultsAreDeadLettered(t *testing.T) {
	f := startFakes(t)
	out := filepath.Join(t.TempDir(), "run")
	prompts := writePrompts(t,
		"ok", "gen-429-once", "gen-500-once", // retried, then fine
		"gen-500-always",  // A fails for good → generate dead letter, label missing_variant
		"gen-slow-always", // B times out every attempt → same
		"garbage",         // both variants unparseable → label unparseable
		"judge-json-validate", "judge-invalid-json", "judge-garbage", "judge-429-once",
		"judge-prefers-violation", // vetoed: flipped
		"unknown-persona", "empty-request",
	)
	m, _ := runJob(t, parse(t, f.args(out, "--prompts", prompts, "--persona", "persona_b_indian_veg")...))
	if !m.Balanced {
		t.Fatalf("not balanced: %+v", m.Stages)
	}
	wantReasons := map[string]map[string]int64{
		schemas.StagePrompts:  {schemas.ReasonUnknownPersona: 1, schemas.ReasonInvalidPrompt: 1},
		schemas.StageGenerate: {schemas.ReasonGenerateFailed: 2},
		schemas.StageLabel: {schemas.ReasonMissingVariant: 2, schemas.ReasonUnparseable: 1,
			schemas.ReasonJudgeFailed: 1, schemas.ReasonJudgeBadVerdict: 2},
	}
	for st, want := range wantReasons {
		if got := stage(m, st).DeadReasons; !mapsEqual(got, want) {
			t.Errorf("stage %s dead reasons = %v, want %v", st, got, want)
		}
	}
	if s := stage(m, schemas.StageFormat); s.In != 5 || s.Out != 5 {
		t.Errorf("format in/out = %d/%d, want 5/5", s.In, s.Out)
	}
	if m.Label.Vetoed != 1 {
		t.Errorf("vetoed = %d, want 1", m.Label.Vetoed)
	}
	dls, err := shards.ReadDir[schemas.DeadLetter](context.Background(), shards.DeadLetterDir(out, schemas.StageGenerate))
	if err != nil || len(dls) != 2 {
		t.Fatalf("generate dead letters = %d, %v; want 2", len(dls), err)
	}
	for _, d := range dls {
		if !strings.Contains(d.Detail, "server_error") && !strings.Contains(d.Detail, "timeout") {
			t.Errorf("dead letter %s detail %q lacks its cause", d.RecordID, d.Detail)
		}
		if d.Payload == "" {
			t.Errorf("dead letter %s has no payload", d.RecordID)
		}
	}
	assertNoSecrets(t, out)
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// BenchmarkPrepareFanOut runs the whole job on prism against endpoints with 100 ms latency:
// "unlimited" reports the speed-up over the original one-request-at-a-time loop (target
// ≥ 20×); "rate_limited" (generator at 1200 rpm, rules labeller) reports the achieved request
// rate ÷ the configured limit (target ≥ 0.9).
func BenchmarkPrepareFanOut(b *testing.B) {
	b.Setenv("GENERATOR_API_KEY", "k")
	b.Setenv("GROQ_API_KEY", "k")
	st := &faultState{}
	const latency = 100 * time.Millisecond
	gen := llmtest.Start(b, llmtest.Config{Latency: latency, Responder: generatorResponder(st)})
	judge := llmtest.Start(b, llmtest.Config{Latency: latency, Responder: judgeResponder(st)})
	job := func(b *testing.B, args ...string) (calls int64, elapsed time.Duration) {
		fs := flag.NewFlagSet("prepare", flag.ContinueOnError)
		o := registerFlags(fs)
		base := []string{"--output", b.TempDir(), "--generator_url", gen.URL, "--groq_url", judge.URL, "--batch_size", "256", "--tpm", "0"}
		if err := fs.Parse(append(base, args...)); err != nil {
			b.Fatal(err)
		}
		before := gen.Requests() + judge.Requests()
		start := time.Now()
		if err := run(context.Background(), o, discardLogger(), io.Discard); err != nil {
			b.Fatal(err)
		}
		return gen.Requests() + judge.Requests() - before, time.Since(start)
	}
	b.Run("unlimited", func(b *testing.B) {
		for range b.N {
			calls, elapsed := job(b, "--count", "40", "--labeler", "groq", "--generator_rpm", "100000",
				"--generator_concurrency", "64", "--rpm", "100000", "--concurrency", "64")
			b.ReportMetric(float64(calls), "calls")
			b.ReportMetric((time.Duration(calls)*latency).Seconds()/elapsed.Seconds(), "speedup_vs_sequential")
		}
	})
	b.Run("rate_limited", func(b *testing.B) {
		const rpm = 1200
		for range b.N {
			calls, elapsed := job(b, "--count", "20", "--labeler", "rules", "--generator_rpm", fmt.Sprint(rpm),
				"--generator_concurrency", "32")
			b.ReportMetric(float64(calls)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(calls)/elapsed.Seconds()/(rpm/60.0), "ratio_to_limit")
		}
	})
}

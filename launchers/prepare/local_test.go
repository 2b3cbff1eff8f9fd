package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/localgen/localgentest"
)

// TestPrepareLocalGenerator runs the job with the in-process GoMLX generator and the rules
// labeller — no network at all. A random tiny model writes no valid recipes, so every pair
// ends as an "unparseable" dead letter: the test checks the plumbing and the accounting.
func TestPrepareLocalGenerator(t *testing.T) {
	dir, _ := localgentest.TinyModelDir(t)
	out := filepath.Join(t.TempDir(), "run")
	m, report := runJob(t, parse(t, "--output", out, "--generator", "local", "--model_dir", dir, "--labeler", "rules",
		"--persona", "persona_c_italian_gf", "--count", "3", "--max_tokens", "16"))
	if !strings.Contains(report, "LLM-vs-rules agreement n/a") {
		t.Errorf("rules-only report should not rate an agreement:\n%s", report)
	}
	if !m.Balanced {
		t.Fatalf("not balanced: %+v", m.Stages)
	}
	if s := stage(m, schemas.StageGenerate); s.In != 6 || s.Out != 6 {
		t.Errorf("generate in/out = %d/%d, want 6/6", s.In, s.Out)
	}
	if s := stage(m, schemas.StageLabel); s.In != 3 || s.DeadReasons[schemas.ReasonUnparseable] != 3 {
		t.Errorf("label = %+v, want 3 in, 3 unparseable", s)
	}
	if u := m.Usage["generator"]; u.CompletionTokens == 0 || u.Model != "sft" {
		t.Errorf("generator usage = %+v, want completion tokens counted", u)
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

// runMain re-executes the test binary as the real command and returns its exit code and
// stderr.
func runMain(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PREPARE_TEST_MAIN=1", "PREPARE_TEST_ARGS="+strings.Join(args, "\x1f"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

func TestBadInput(t *testing.T) {
	gen := llmtest.Start(t, llmtest.Config{})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	malformed := write("bad.yaml", "personas:\n  - id: persona_x\n    name: [unclosed\n")
	emptyRestr := write("empty.yaml", "personas:\n  - id: persona_x\n    name: X\n    cuisines: [Thai]\n    dietary_restrictions: []\n")
	badPrompts := write("prompts.jsonl", "{\"prompt_id\": \"a\", \"persona_id\": \"persona_b_indian_veg\", \"request\": \"x\"}\n{not json\n")
	aFile := write("a-file", "")

	tests := []struct {
		name string
		args []string
		want []string // substrings of stderr
	}{
		{"malformed personas YAML", []string{"--personas", malformed}, []string{"bad.yaml", "line"}},
		{"empty restrictions", []string{"--personas", emptyRestr}, []string{"empty.yaml:", "dietary_restrictions", "none"}},
		{"missing personas file", []string{"--personas", filepath.Join(dir, "nope.yaml")}, []string{"--personas", "no such file"}},
		{"unknown persona", []string{"--persona", "persona_z_unknown"}, []string{"persona_z_unknown", "known personas", "persona_a_korean_spicy"}},
		{"unreadable prompts", []string{"--prompts", filepath.Join(dir, "missing.jsonl")}, []string{"--prompts", "missing.jsonl"}},
		{"malformed prompts", []string{"--prompts", badPrompts}, []string{"--prompts", "line 2"}},
		{"unwritable output", []string{"--output", filepath.Join(aFile, "sub")}, []string{"not writable", "--output"}},
		{"bad labeler", []string{"--labeler", "gpt"}, []string{"--labeler", "groq", "rules"}},
		{"bad veto", []string{"--veto", "maybe"}, []string{"--veto", "flip"}},
		{"zero rpm", []string{"--rpm", "0", "--labeler", "groq"}, []string{"--rpm must be > 0"}},
		{"no generator url", []string{"--generator_url", ""}, []string{"--generator_url"}},
		{"zero decode batch", []string{"--generator_batch", "0"}, []string{"--generator_batch (0) must be ≥ 1"}},
		{"presence penalty", []string{"--presence_penalty", "2.5"}, []string{"--presence_penalty (2.5) must be in [-2, 2]"}},
		{"no model copies", []string{"--generator_replicas", "0"}, []string{"--generator_replicas (0) must be ≥ 1"}},
		{"frequency penalty", []string{"--frequency_penalty", "NaN"}, []string{"--frequency_penalty (NaN) must be in [-2, 2]"}},
		{"missing local model", []string{"--generator", "local", "--model_dir", filepath.Join(dir, "no-model")}, []string{"--model_dir", "no-model/tokenizer.json"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			args := append([]string{"--output", out, "--generator_url", gen.URL, "--count", "2"}, tc.args...)
			code, stderr := runMain(t, args...)
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; stderr:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("output %s exists after a rejected run (err=%v); want nothing written", out, err)
			}
			if gen.Requests() != 0 {
				t.Errorf("generator got %d requests for rejected input, want 0", gen.Requests())
			}
		})
	}
}

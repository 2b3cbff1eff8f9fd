package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/transforms/localgen/localgentest"
)

func TestGenerateCommand(t *testing.T) {
	dir, _ := localgentest.TinyModelDir(t)
	var out strings.Builder
	args := []string{"--model_dir", dir, "--prompt", "I have tofu.", "--max_new_tokens", "5", "--log_level", "warn"}
	if err := run(context.Background(), append([]string{"generate"}, args...), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Request          string `json:"request"`
		StopReason       string `json:"stop_reason"`
		CompletionTokens int    `json:"completion_tokens"`
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if got.Request != "I have tofu." || got.CompletionTokens == 0 || got.CompletionTokens > 5 {
		t.Errorf("got %+v, want the request echoed and 1–5 completion tokens", got)
	}
	// Greedy decoding is deterministic.
	var again strings.Builder
	if err := run(context.Background(), append([]string{"generate"}, args...), &again, io.Discard); err != nil || again.String() != out.String() {
		t.Errorf("second greedy run = %q, %v; want %q", again.String(), err, out.String())
	}
	if err := run(context.Background(), []string{"generate", "--model_dir", dir}, io.Discard, io.Discard); err == nil || exitCode(err) != 2 {
		t.Errorf("generate without a prompt: err %v, want a flag error (exit 2)", err)
	}
	blank := filepath.Join(t.TempDir(), "blank.txt")
	if err := os.WriteFile(blank, []byte("\n  \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var none strings.Builder
	err := run(context.Background(), []string{"generate", "--model_dir", dir, "--prompts_file", blank}, &none, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "holds no requests") || none.Len() > 0 {
		t.Errorf("generate with a blank prompts file: err %v, output %q; want an error saying it holds no requests", err, none.String())
	}
}

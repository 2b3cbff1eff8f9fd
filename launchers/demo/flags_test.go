package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadFlags: settings the demo cannot honour are refused before anything runs or is
// written.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sft_batch_size", "6"}, "--sft_batch_size (6) must be 1 to 4 or a multiple of 4"},
		{[]string{"--sft_batch_size", "0"}, "--sft_batch_size (0) must be 1 to 4 or a multiple of 4"},
		{[]string{"--persona", "persona_z"}, "persona_z"},
		{[]string{"--generator_replicas", "0"}, "--generator_replicas (0) must be ≥ 1"},
		{[]string{"--dpo_parallel", "0"}, "--dpo_parallel (0) must be ≥ 1"},
		{[]string{"--presence_penalty", "2.5"}, "--presence_penalty (2.5) must be in [-2, 2]"},
		{[]string{"--dpo_loss_type", "kto"}, `loss_type "kto" is not supported`},
		{[]string{"--dpo_loss_type", "hinge"}, "label_smoothing applies only to the sigmoid and robust losses"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			tmp := t.TempDir()
			out, cache := filepath.Join(tmp, "out"), filepath.Join(tmp, "cache")
			fs := flag.NewFlagSet("demo", flag.ContinueOnError)
			o := registerFlags(fs)
			if err := fs.Parse(append([]string{"--out", out, "--cache", cache, "--bin", filepath.Join(tmp, "bin")}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			err := run(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			for _, dir := range []string{out, cache} {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("%s was written for rejected flags", dir)
				}
			}
		})
	}
}

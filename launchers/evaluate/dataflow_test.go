package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestDataflowDryRun translates the evaluation job for Dataflow offline (--runner=dataflow
// --dry_run): nothing may be written or called.
func TestDataflowDryRun(t *testing.T) {
	for name, value := range map[string]string{
		"runner": "dataflow", "dry_run": "true", "project": "test-project", "region": "us-central1",
		"staging_location": "gs://test-bucket/staging", "temp_location": "gs://test-bucket/tmp", "worker_binary": os.Args[0],
		// An earlier prism run in this process leaves the loopback environment set.
		"environment_type": "", "environment_config": "",
	} {
		fl := flag.Lookup(name)
		if fl == nil {
			t.Fatalf("Beam flag --%s is not registered", name)
		}
		old := fl.Value.String()
		if err := fl.Value.Set(value); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fl.Value.Set(old) })
	}
	out := filepath.Join(t.TempDir(), "never-written")
	o := parse(t, "--output", out, "--generator", "openai", "--generator_url", "http://127.0.0.1:1/v1",
		"--judge", "gemini", "--gemini_backend", "vertex", "--location", "us-central1", "--persona", "persona_a_korean_spicy")
	if err := run(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("dry run created %s", out)
	}
}

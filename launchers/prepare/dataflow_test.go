package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDataflowDryRun builds the Dataflow job offline (--runner=dataflow --dry_run): the
// pipeline must translate to a Dataflow job, and nothing may be written or called.
func TestDataflowDryRun(t *testing.T) {
	f := startFakes(t)
	set := func(name, value string) {
		t.Helper()
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
	set("runner", "dataflow")
	set("dry_run", "true")
	set("project", "test-project")
	set("region", "us-central1")
	set("staging_location", "gs://test-bucket/staging")
	set("temp_location", "gs://test-bucket/tmp")
	set("worker_binary", os.Args[0])
	// An earlier prism run in this process leaves the loopback environment set.
	set("environment_type", "")
	set("environment_config", "")

	out := filepath.Join(t.TempDir(), "never-written")
	var stdout strings.Builder
	if err := run(context.Background(), parse(t, f.args(out, "--count", "3")...), discardLogger(), &stdout); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("dry run created %s", out)
	}
	if n := f.gen.Requests() + f.judge.Requests(); n != 0 {
		t.Errorf("dry run made %d LLM calls, want 0", n)
	}
}

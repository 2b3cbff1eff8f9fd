package beamrun

import (
	"context"
	"flag"
	"testing"

	"github.com/pantrypilot/recipe-dpo/transforms/progress"
)

func TestFlags(t *testing.T) {
	if !LocalRunner() || DryRun() {
		t.Fatalf("without Beam's flags: LocalRunner %v, DryRun %v; want true, false", LocalRunner(), DryRun())
	}
	runner := flag.String("runner", "", "")
	dry := flag.Bool("dry_run", false, "")
	for _, tt := range []struct {
		runner      string
		dry         bool
		local, isDr bool
	}{
		{"", false, true, false}, {"prism", false, true, false}, {"direct", true, true, true}, {"dataflow", true, false, true},
	} {
		*runner, *dry = tt.runner, tt.dry
		if LocalRunner() != tt.local || DryRun() != tt.isDr {
			t.Errorf("--runner=%q --dry_run=%v: LocalRunner %v, DryRun %v; want %v, %v", tt.runner, tt.dry, LocalRunner(), DryRun(), tt.local, tt.isDr)
		}
		// Progress must start and stop cleanly either way.
		Progress(context.Background(), progress.Task{Name: "x", Done: func() int64 { return 0 }})()
	}
}

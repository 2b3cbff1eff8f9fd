// Package beamrun holds what the pipeline launchers read from Beam's own flags (--runner,
// --dry_run) and the live progress they print on the local runner.
package beamrun

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/pantrypilot/recipe-dpo/transforms/progress"
)

// ProgressEvery is how often the local runner's progress lines are printed.
const ProgressEvery = 10 * time.Second

// DryRun reports --dry_run=true: the job is translated, not submitted.
func DryRun() bool {
	f := flag.Lookup("dry_run")
	return f != nil && f.Value.String() == "true"
}

// LocalRunner reports a local runner (prism, the default, or direct), whose workers run in
// this process.
func LocalRunner() bool {
	f := flag.Lookup("runner")
	return f == nil || f.Value.String() == "" || f.Value.String() == "prism" || f.Value.String() == "direct"
}

// Progress prints the tasks' progress on stderr every ProgressEvery while the job runs, when
// it runs here: on the local runner and not as a dry run (elsewhere the counters never move).
// Call the returned function when the job ends.
func Progress(ctx context.Context, tasks ...progress.Task) (stop func()) {
	if DryRun() || !LocalRunner() {
		return func() {}
	}
	return progress.Start(ctx, os.Stderr, ProgressEvery, tasks...).Stop
}

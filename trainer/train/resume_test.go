package train

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/trainer/peft"
)

// Environment of the child process of TestKillAndResume.
const (
	childEnv      = "TRAIN_TEST_CHILD"
	childModelEnv = "TRAIN_TEST_MODEL"
	childRootEnv  = "TRAIN_TEST_ROOT"
	childOutEnv   = "TRAIN_TEST_OUT"
)

// resumeConfig: 20 pairs, 2 per micro-batch × 2 accumulated, 2 epochs = 10 steps with dropout
// on, a checkpoint every 2 steps and a warm-up, so the resumed run must restore the AdamW
// moments, the data position mid-epoch and the dropout stream.
func resumeConfig(root, modelDir, out string) Config {
	fx := &fixture{root: root, modelDir: modelDir, outDir: out}
	c := fx.config("p1")
	c.GradAccum = 2
	c.Epochs = 2
	c.SaveSteps = 2
	c.WarmupSteps = 2
	c.LoRADropout = 0.1
	return c
}

// TestKillChild is the child side of TestKillAndResume: it trains slowly after step 4 so the
// parent can SIGKILL it between checkpoints.
func TestKillChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("child process of TestKillAndResume")
	}
	testHookAfterStep = func(done int) {
		if done >= 5 {
			time.Sleep(time.Hour) // killed here
		}
	}
	c := resumeConfig(os.Getenv(childRootEnv), os.Getenv(childModelEnv), os.Getenv(childOutEnv))
	if _, err := Train(context.Background(), c, testEnv(t)); err != nil {
		t.Fatal(err)
	}
}

// TestKillAndResume kills a training process with SIGKILL after its step-4 checkpoint (while
// it is inside step 5), resumes it, and expects adapter files byte-identical to an
// uninterrupted run's.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	fx := newFixture(t, 20, "p1")
	whole := resumeConfig(fx.root, fx.modelDir, filepath.Join(t.TempDir(), "whole"))
	if _, err := Train(context.Background(), whole, testEnv(t)); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", childModelEnv+"="+fx.modelDir, childRootEnv+"="+fx.root, childOutEnv+"="+out)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := resumeConfig(fx.root, fx.modelDir, out)
	ckpt := filepath.Join(killed.RunDir(), CheckpointsDir, "checkpoint-4", ckptStateFile)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(ckpt); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("child wrote no checkpoint-4 in 2 minutes; output:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let it get into step 5
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL; output:\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(killed.RunDir(), peft.WeightsFileName)); err == nil {
		t.Fatal("the killed run exported an adapter: it finished before the kill")
	}

	killed.Resume = true
	res, err := Train(context.Background(), killed, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 4 || res.RefCache != "hit" {
		t.Errorf("resumed from step %d with reference cache %q, want step 4 and a cache hit", res.ResumedFrom, res.RefCache)
	}
	for _, f := range []string{peft.WeightsFileName, peft.ConfigFileName} {
		a, b := readFile(t, filepath.Join(whole.RunDir(), f)), readFile(t, filepath.Join(killed.RunDir(), f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the killed-and-resumed run (%d vs %d bytes)", f, len(a), len(b))
		}
	}
	wm, km := readMetrics(t, whole.RunDir()), readMetrics(t, killed.RunDir())
	if len(wm) != len(km) {
		t.Fatalf("metrics.jsonl: %d lines uninterrupted, %d resumed", len(wm), len(km))
	}
	for i := range wm {
		for _, k := range []string{"step", "loss", "grad_norm", "lr", "rewards/margins"} {
			if wm[i][k] != km[i][k] {
				t.Errorf("metrics line %d %s: uninterrupted %v, resumed %v", i, k, wm[i][k], km[i][k])
			}
		}
	}
	t.Logf("resumed from %s; %d metrics lines agree; adapter %s bytes identical", strconv.Itoa(res.ResumedFrom), len(km), peft.WeightsFileName)
}

// TestCancelSavesCheckpoint: cancelling the context (SIGINT in the binary) saves a checkpoint at
// the step boundary, and --resume finishes with the uninterrupted run's adapter bytes.
func TestCancelSavesCheckpoint(t *testing.T) {
	fx := newFixture(t, 20, "p1")
	whole := resumeConfig(fx.root, fx.modelDir, filepath.Join(t.TempDir(), "whole"))
	whole.SaveSteps = 0
	if _, err := Train(context.Background(), whole, testEnv(t)); err != nil {
		t.Fatal(err)
	}
	c := resumeConfig(fx.root, fx.modelDir, filepath.Join(t.TempDir(), "cancelled"))
	c.SaveSteps = 0
	ctx, cancel := context.WithCancel(context.Background())
	testHookAfterStep = func(done int) {
		if done == 3 {
			cancel()
		}
	}
	_, err := Train(ctx, c, testEnv(t))
	testHookAfterStep = nil
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if steps, _ := checkpoints(filepath.Join(c.RunDir(), CheckpointsDir)); len(steps) != 1 || steps[0] != 3 {
		t.Fatalf("checkpoints after cancel: %v, want [3]", steps)
	}
	c.Resume = true
	if _, err := Train(context.Background(), c, testEnv(t)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(whole.RunDir(), peft.WeightsFileName)), readFile(t, filepath.Join(c.RunDir(), peft.WeightsFileName))) {
		t.Error("adapter after cancel + resume differs from the uninterrupted run's")
	}
}

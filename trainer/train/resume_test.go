package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
)

// Environment of the child process of TestKillAndResume.
const (
	childEnv      = "TRAIN_TEST_CHILD"
	childModelEnv = "TRAIN_TEST_MODEL"
	childRootEnv  = "TRAIN_TEST_ROOT"
	childOutEnv   = "TRAIN_TEST_OUT"
	childFullEnv  = "TRAIN_TEST_FULL"                   // "1": the --full variant
	childCkptEnv  = "TRAIN_TEST_GRADIENT_CHECKPOINTING" // "1": with --gradient_checkpointing
)

// resumeConfig: 20 pairs, 2 per micro-batch × 2 accumulated, 2 epochs = 10 steps with dropout
// on, a checkpoint every 2 steps and a warm-up, so the resumed run must restore the AdamW
// moments, the data position mid-epoch and the dropout stream.
//
// The --full variant trains every weight of the tiny model in sft mode (the demo's use), so the
// checkpoint must restore all weights and their AdamW moments.
func resumeConfig(root, modelDir, out string, full bool) Config {
	fx := &fixture{root: root, modelDir: modelDir, outDir: out}
	c := fx.config("p1")
	c.GradAccum = 2
	c.Epochs = 2
	c.SaveSteps = 2
	c.WarmupSteps = 2
	c.LoRADropout = 0.1
	if full {
		c.Mode, c.Full = ModeSFT, true
		c.WeightDecay = 0.01 // exercise the per-tensor decay as well
	}
	return c
}

// resultFiles are the files a finished run exports: the adapter, or with --full the model
// directory.
func resultFiles(full bool) []string {
	if full {
		return []string{safetensors.SingleFileName, "config.json", tokenizer.FileName}
	}
	return []string{peft.WeightsFileName, peft.ConfigFileName}
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
	c := resumeConfig(os.Getenv(childRootEnv), os.Getenv(childModelEnv), os.Getenv(childOutEnv), os.Getenv(childFullEnv) == "1")
	c.GradientCheckpointing = os.Getenv(childCkptEnv) == "1"
	if _, err := Train(context.Background(), c, testEnv(t)); err != nil {
		t.Fatal(err)
	}
}

// TestKillAndResume kills a training process with SIGKILL after its step-4 checkpoint (while
// it is inside step 5), resumes it, and expects exported files byte-identical to an
// uninterrupted run's: the adapter (LoRA dpo, also with --gradient_checkpointing), or the
// whole model directory (--full sft).
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	requireBitIdenticalReruns(t)
	fx := newFixture(t, 20, "p1")
	for _, v := range []struct {
		name                string
		full, checkpointing bool
	}{{"lora-dpo", false, false}, {"lora-dpo-checkpointing", false, true}, {"full-sft", true, false}} {
		t.Run(v.name, func(t *testing.T) { killAndResume(t, fx, v.full, v.checkpointing) })
	}
}

func killAndResume(t *testing.T, fx *fixture, full, checkpointing bool) {
	whole := resumeConfig(fx.root, fx.modelDir, filepath.Join(t.TempDir(), "whole"), full)
	whole.GradientCheckpointing = checkpointing
	if _, err := Train(context.Background(), whole, testEnv(t)); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	fullEnv := map[bool]string{false: "0", true: "1"}[full]
	cmd.Env = append(os.Environ(), childEnv+"=1", childModelEnv+"="+fx.modelDir, childRootEnv+"="+fx.root, childOutEnv+"="+out,
		childFullEnv+"="+fullEnv, childCkptEnv+"="+map[bool]string{false: "0", true: "1"}[checkpointing])
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := resumeConfig(fx.root, fx.modelDir, out, full)
	killed.GradientCheckpointing = checkpointing
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
	if _, err := os.Stat(filepath.Join(killed.RunDir(), resultFiles(full)[0])); err == nil {
		t.Fatal("the killed run exported its result: it finished before the kill")
	}

	killed.Resume = true
	res, err := Train(context.Background(), killed, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	wantRef := map[bool]string{false: "hit", true: "off"}[full] // sft has no reference
	if res.ResumedFrom != 4 || res.RefCache != wantRef {
		t.Errorf("resumed from step %d with reference cache %q, want step 4 and %q", res.ResumedFrom, res.RefCache, wantRef)
	}
	for _, f := range resultFiles(full) {
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
	t.Logf("resumed from %s; %d metrics lines agree; %v bytes identical", strconv.Itoa(res.ResumedFrom), len(km), resultFiles(full))
}

// TestCancelSavesCheckpoint: cancelling the context (SIGINT in the binary) saves a checkpoint at
// the step boundary, and --resume finishes with the uninterrupted run's exported bytes. The
// --full dpo case keeps the reference in memory (no cache), so the resumed run must recompute
// it from the initial weights, not from the restored ones.
func TestCancelSavesCheckpoint(t *testing.T) {
	requireBitIdenticalReruns(t)
	fx := newFixture(t, 20, "p1")
	for _, tc := range []struct {
		name string
		full bool
		mode string
	}{{"lora-dpo", false, ModeDPO}, {"full-sft", true, ModeSFT}, {"full-dpo-nocache", true, ModeDPO}} {
		t.Run(tc.name, func(t *testing.T) {
			conf := func(out string) Config {
				c := resumeConfig(fx.root, fx.modelDir, out, tc.full)
				c.Mode = tc.mode
				c.SaveSteps = 0
				if tc.full && tc.mode == ModeDPO {
					c.RefCache = false
				}
				return c
			}
			cancelAndResume(t, conf(filepath.Join(t.TempDir(), "whole")), conf(filepath.Join(t.TempDir(), "cancelled")), tc.full)
		})
	}
}

func cancelAndResume(t *testing.T, whole, c Config, full bool) {
	if _, err := Train(context.Background(), whole, testEnv(t)); err != nil {
		t.Fatal(err)
	}
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
	for _, f := range resultFiles(full) {
		if !bytes.Equal(readFile(t, filepath.Join(whole.RunDir(), f)), readFile(t, filepath.Join(c.RunDir(), f))) {
			t.Errorf("%s after cancel + resume differs from the uninterrupted run's", f)
		}
	}
}

// TestResumeUnreadableCheckpoint: a latest checkpoint that cannot be read stops --resume
// with an error naming the one before it; deleting the bad one resumes from that.
func TestResumeUnreadableCheckpoint(t *testing.T) {
	fx := newFixture(t, 8, "p1")
	c := fx.config("p1")
	c.SaveSteps, c.SaveLimit = 1, 0
	if _, err := Train(context.Background(), c, testEnv(t)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.RunDir(), CheckpointsDir)
	steps, err := checkpoints(dir)
	if err != nil || len(steps) < 2 {
		t.Fatalf("checkpoints %v, %v: want at least two", steps, err)
	}
	last := filepath.Join(dir, fmt.Sprintf("%s%d", ckptPrefix, steps[len(steps)-1]))
	if err := os.WriteFile(filepath.Join(last, "adapter.safetensors"), []byte("not safetensors"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Resume = true
	_, err = Train(context.Background(), c, testEnv(t))
	want := fmt.Sprintf("delete %s to resume from checkpoint-%d", last, steps[len(steps)-2])
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("resume from an unreadable checkpoint: %v; want an error containing %q", err, want)
	}
	if err := os.RemoveAll(last); err != nil {
		t.Fatal(err)
	}
	res, err := Train(context.Background(), c, testEnv(t))
	if err != nil || res.ResumedFrom != steps[len(steps)-2] {
		t.Fatalf("resume after deleting it: from %v, %v; want step %d", res, err, steps[len(steps)-2])
	}
}

// TestFreshRunReplacesCheckpoints: a run without --resume into a run directory that holds an
// earlier run's checkpoints removes them, so a later --resume continues this run and the
// save_limit pruning keeps this run's checkpoints.
func TestFreshRunReplacesCheckpoints(t *testing.T) {
	fx := newFixture(t, 8, "p1")
	c := fx.config("p1")
	c.SaveSteps = 1
	if _, err := Train(context.Background(), c, testEnv(t)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.RunDir(), CheckpointsDir)
	first, _ := checkpoints(dir)
	// An earlier, longer run's checkpoint: a higher step than this run reaches.
	stale := filepath.Join(dir, fmt.Sprintf("%s%d", ckptPrefix, 999))
	if err := os.CopyFS(stale, os.DirFS(filepath.Join(dir, fmt.Sprintf("%s%d", ckptPrefix, first[len(first)-1])))); err != nil {
		t.Fatal(err)
	}
	if _, err := Train(context.Background(), c, testEnv(t)); err != nil {
		t.Fatal(err)
	}
	if got, _ := checkpoints(dir); !slices.Equal(got, first) {
		t.Errorf("checkpoints after a fresh run %v, want this run's %v (the earlier run's step 999 removed)", got, first)
	}
	// A fresh run that fails leaves no earlier weights beside its own metadata.
	testHookLoss = func(step int, loss float64) float64 {
		if step == 1 {
			return math.NaN()
		}
		return loss
	}
	defer func() { testHookLoss = nil }()
	if _, err := Train(context.Background(), c, testEnv(t)); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("got %v, want ErrNonFinite", err)
	}
	if _, err := os.Stat(filepath.Join(c.RunDir(), peft.WeightsFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the earlier run's adapter is still there after a failed fresh run (stat: %v)", err)
	}
}

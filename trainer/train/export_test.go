package train

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/data"
	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
)

// seqLogProbs computes summed completion log-probs [2B] of every batch of exs with the adapter on.
func seqLogProbs(t *testing.T, store *model.Store, m *llama.Model, exs []data.Example) []float32 {
	t.Helper()
	exec, err := llama.NewSequenceLogProbsExec(backend(t), store, m, llama.AdapterOn)
	if err != nil {
		t.Fatal(err)
	}
	var out []float32
	for _, b := range data.Batches(exs, data.Options{BatchSize: 4}, 0) {
		outs, err := exec.Exec(batchTensors(b)...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tensors.MustCopyFlatData[float32](outs[0])...)
	}
	return out
}

// TestPEFTRoundTrip: the exported adapter, reloaded with peft.Load into a fresh store, gives
// the same log-probs as the trained store; merged into the base weights (the --merge_output
// and --sft_adapter path) it gives them within float32 rounding.
func TestPEFTRoundTrip(t *testing.T) {
	fx := newFixture(t, 12, "p1")
	c := fx.config("p1")
	c.LearningRate = 1e-2
	res, err := Train(context.Background(), c, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	// The trained store, rebuilt from the final checkpoint.
	store, m, tv, exs, _ := setup(t, c)
	if _, err := loadCheckpoint(res.Checkpoint, tv); err != nil {
		t.Fatal(err)
	}
	want := seqLogProbs(t, store, m, exs)

	a, err := peft.Load(c.RunDir(), fx.cfg)
	if err != nil {
		t.Fatal(err)
	}
	fresh, m2, _, _, _ := setup(t, c)
	for module := range a.A {
		for _, x := range []struct {
			suffix string
			vals   []float32
		}{{".lora_A.weight", a.A[module]}, {".lora_B.weight", a.B[module]}} {
			v := fresh.GetVariable(llama.VariablePath(module + x.suffix))
			if err := v.SetValue(tensors.FromFlatDataAndDimensions(x.vals, v.Shape().Dimensions...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := seqLogProbs(t, fresh, m2, exs)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("log-prob %d: reloaded adapter %v, trained store %v", i, got[i], want[i])
		}
	}

	// Merged into the base (no adapter): same log-probs up to rounding.
	merged := c
	merged.SFTAdapter = c.RunDir()
	base, err := loadBase(merged)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := llama.New(fx.cfg, dtypes.Float32, nil)
	if err != nil {
		t.Fatal(err)
	}
	mstore := model.NewStore()
	if err := llama.LoadWeights(mstore, fx.cfg, dtypes.Float32, base.Weights); err != nil {
		t.Fatal(err)
	}
	mg := seqLogProbs(t, mstore, plain, exs)
	maxRel := 0.0
	for i := range want {
		maxRel = math.Max(maxRel, math.Abs(float64(mg[i]-want[i]))/math.Abs(float64(want[i])))
	}
	t.Logf("merged vs adapter log-probs: max relative difference %.2g", maxRel)
	if maxRel > 1e-5 {
		t.Errorf("merged model log-probs differ from the adapter's by %.3g relative", maxRel)
	}
}

// TestDropoutSeeded: with dropout the loss depends on the micro-batch's seed, and only on it,
// with the masks drawn in Go and fed to the graph (the Go backend) and drawn in the graph (XLA
// backends, here forced on the Go backend). A model without dropout reads no masks.
func TestDropoutSeeded(t *testing.T) {
	fx := newFixture(t, 4, "p1")
	c := fx.config("p1")
	c.LoRADropout = 0.5
	for _, hostMasks := range []bool{true, false} {
		t.Run(fmt.Sprintf("hostMasks=%v", hostMasks), func(t *testing.T) {
			store, m, tv, exs, pad := setup(t, c)
			// The Go backend draws masks on the host; XLA draws them in the graph.
			if got, want := hostDropout(backend(t), m), onGoBackend(t); got != want {
				t.Fatalf("hostDropout on %s with dropout 0.5 = %v, want %v", backend(t).String(), got, want)
			}
			for _, s := range llama.LoRAWeightSpecs(m.Config, *m.LoRA) { // make the adapter matter
				v := store.GetVariable(llama.VariablePath(s.Name))
				vals := make([]float32, v.Shape().Size())
				for i := range vals {
					vals[i] = 0.05 * float32(i%7-3)
				}
				if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...)); err != nil {
					t.Fatal(err)
				}
			}
			micro, err := newMicroStep(backend(t), store, m, c, tv, hostMasks)
			if err != nil {
				t.Fatal(err)
			}
			b := data.Batches(exs, data.Options{BatchSize: 4, PadID: pad}, 0)[0]
			loss := func(seed int64) float64 {
				if err := store.SetRNGStateFromSeed(seed); err != nil {
					t.Fatal(err)
				}
				args := append(batchTensors(b), scalarF32(0))
				if hostMasks {
					args = append(args, dropoutMasks(m, b, seed)...)
				}
				outs, err := micro.Exec(args...)
				if err != nil {
					t.Fatal(err)
				}
				return scalar(outs[0])
			}
			a1, a2, b1 := loss(dropoutSeed(1, 0, 0)), loss(dropoutSeed(1, 0, 0)), loss(dropoutSeed(1, 0, 1))
			if a1 != a2 {
				t.Errorf("same seed, losses %v and %v: dropout is not reproducible", a1, a2)
			}
			if a1 == b1 {
				t.Errorf("different seeds, same loss %v: dropout is not applied", a1)
			}
		})
	}
	c.LoRADropout = 0
	_, m, _, _, _ := setup(t, c)
	if hostDropout(backend(t), m) {
		t.Errorf("hostDropout without dropout = true")
	}
}

// TestRewardAccuracyRises trains DPO on the learnable synthetic preference (spicy chosen, bland
// rejected) and expects the reward accuracy to go from 0 at step 1 (rewards are exactly 0) to
// above 0.9 and the loss to fall.
func TestRewardAccuracyRises(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	fx := newFixture(t, 32, "p1")
	c := fx.config("p1")
	c.LearningRate = 5e-3
	c.Epochs = 3
	c.BatchSize = 4
	c.GradAccum = 2
	c.WarmupRatio = 0.1
	c.LoggingSteps = 1
	res, err := Train(context.Background(), c, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := readMetrics(t, c.RunDir())
	first, last := lines[0], lines[len(lines)-1]
	t.Logf("%d steps: loss %.4f → %.4f, accuracy %.2f → %.2f, margin %.3f → %.3f", res.Steps,
		first["loss"], last["loss"], first["rewards/accuracies"], last["rewards/accuracies"], first["rewards/margins"], last["rewards/margins"])
	if first["rewards/accuracies"] != 0 {
		t.Errorf("step 1 rewards/accuracies = %.2f, want 0 (policy = reference)", first["rewards/accuracies"])
	}
	lastEpoch := lines[len(lines)-res.Stats.StepsPerEpoch:]
	acc := 0.0
	for _, l := range lastEpoch {
		acc += l["rewards/accuracies"] / float64(len(lastEpoch))
	}
	if acc <= 0.9 {
		t.Errorf("last epoch's mean rewards/accuracies = %.2f, want > 0.9", acc)
	}
	if !(last["loss"] < first["loss"]) || !(last["rewards/margins"] > first["rewards/margins"]) {
		t.Errorf("loss %.4f → %.4f, margin %.4f → %.4f: want the loss down and the margin up", first["loss"], last["loss"], first["rewards/margins"], last["rewards/margins"])
	}
}

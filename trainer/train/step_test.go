package train

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/data"
	"github.com/pantrypilot/recipe-dpo/trainer/llama"
)

// setup builds what Train builds before its loop: the store with base weights and a fresh
// adapter (or, with c.Full, trainable base weights), the trainer variables and the tokenized
// examples.
func setup(t testing.TB, c Config) (*model.Store, *llama.Model, *trainVars, []data.Example, int32) {
	t.Helper()
	base, err := loadBase(c)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := data.Load(context.Background(), c.DataRoot, c.Persona)
	if err != nil {
		t.Fatal(err)
	}
	exs, _ := data.Tokenize(raw, base.Tokenizer, c.MaxLength, c.MaxPromptLength)
	store := model.NewStore()
	m, tv, err := buildModel(store, base, c)
	if err != nil {
		t.Fatal(err)
	}
	return store, m, tv, exs, padID(base.Tokenizer)
}

func flat32(t testing.TB, v *model.Variable) []float32 {
	t.Helper()
	return tensors.MustCopyFlatData[float32](v.MustValue())
}

// TestAccumulationEquivalence: two optimizer steps over the same 4 pairs, once as one
// micro-batch of 4 and once as 2 accumulated micro-batches of 2, move the adapter the same way.
func TestAccumulationEquivalence(t *testing.T) {
	fx := newFixture(t, 8, "p1")
	for _, tc := range []struct {
		mode string
		full bool
	}{{ModeDPO, false}, {ModeSFT, false}, {ModeSFT, true}} {
		mode := tc.mode
		name := mode
		if tc.full {
			name += "-full"
		}
		t.Run(name, func(t *testing.T) {
			c := fx.config("p1")
			c.Mode = mode
			c.Full = tc.full
			if tc.full {
				// Every base weight trains, including many whose gradient is ~0 (rows of unseen
				// tokens, cancelling sums): Adam's first steps are ≈ sign(g)·lr there, which
				// turns float32 rounding noise of the summation order into lr-sized moves. A
				// larger ε damps those without changing what is tested: the accumulation.
				c.AdamEpsilon = 1e-4
			}
			c.LoRADropout = 0 // dropout masks depend on the batch shape
			c.LearningRate = 1e-2
			c.MaxGradNorm = 0.05 // make clipping bite, so the global norm must match too
			c.WeightDecay = 0.1
			run := func(accum int) ([][]float32, []float64) {
				store, m, tv, exs, pad := setup(t, c)
				micro, err := newMicroStep(backend(t), store, m, c, tv, false) // no dropout
				if err != nil {
					t.Fatal(err)
				}
				apply, err := newApplyStep(backend(t), store, c, tv)
				if err != nil {
					t.Fatal(err)
				}
				var norms []float64
				for step := range 2 {
					group := exs[4*step : 4*step+4]
					per := 4 / accum
					var batches []data.Batch
					for j := range accum {
						batches = append(batches, data.Batches(group[j*per:(j+1)*per], data.Options{BatchSize: per, PadID: pad}, 0)...)
					}
					if mode == ModeSFT {
						batches = sftBatches(batches)
					}
					total := 0.0
					weights := make([]float64, len(batches))
					for j, b := range batches {
						weights[j] = float64(len(b.IDs))
						if mode == ModeSFT {
							weights[j] = float64(completionTokens(b))
						}
						total += weights[j]
					}
					for j, b := range batches {
						if _, err := micro.Exec(append(batchTensors(b), scalarF32(weights[j]/total))...); err != nil {
							t.Fatal(err)
						}
					}
					bc1, bc2 := biasCorrections(c, step+1)
					outs, err := apply.Exec(scalarF32(c.LearningRate), tensors.FromValue(bc1), tensors.FromValue(bc2))
					if err != nil {
						t.Fatal(err)
					}
					norms = append(norms, scalar(outs[0]))
				}
				var params [][]float32
				for _, p := range tv.params {
					params = append(params, flat32(t, p))
				}
				return params, norms
			}
			whole, wholeNorms := run(1)
			accum, accumNorms := run(2)
			for i := range wholeNorms {
				if math.Abs(wholeNorms[i]-accumNorms[i]) > 1e-5*math.Abs(wholeNorms[i]) {
					t.Errorf("step %d grad norm: batch 4×1 %.8g, 2×2 %.8g", i+1, wholeNorms[i], accumNorms[i])
				}
			}
			if !(wholeNorms[0] > c.MaxGradNorm) {
				t.Errorf("grad norm %g does not exceed max_grad_norm %g: clipping untested", wholeNorms[0], c.MaxGradNorm)
			}
			maxDiff, maxMove := 0.0, 0.0
			_, _, tv0, _, _ := setup(t, c)
			for i := range whole {
				init := flat32(t, tv0.params[i])
				for j := range whole[i] {
					maxDiff = math.Max(maxDiff, math.Abs(float64(whole[i][j]-accum[i][j])))
					maxMove = math.Max(maxMove, math.Abs(float64(whole[i][j]-init[j])))
				}
			}
			t.Logf("grad norms %v vs %v; max |Δ| between runs %.3g, max parameter move %.3g", wholeNorms, accumNorms, maxDiff, maxMove)
			if maxMove == 0 {
				t.Fatal("the adapter did not move")
			}
			if maxDiff > 1e-6+1e-4*maxMove {
				t.Errorf("batch 4×1 and 2×2 adapters differ by %.3g (parameters moved by %.3g)", maxDiff, maxMove)
			}
		})
	}
}

// TestSchedule checks warm-up and both decays against transformers' formulas.
func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		kind string
		step int
		want float64
	}{
		{SchedulerCosine, 0, 0}, {SchedulerCosine, 5, 0.5}, {SchedulerCosine, 10, 1}, {SchedulerCosine, 60, 0.5}, {SchedulerCosine, 110, 0},
		{SchedulerLinear, 10, 1}, {SchedulerLinear, 60, 0.5}, {SchedulerLinear, 109, 0.01},
		{SchedulerConstant, 2, 0.2}, {SchedulerConstant, 100, 1},
	} {
		s := Schedule{Peak: 1, Warmup: 10, Total: 110, Kind: tc.kind}
		if got := s.LR(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s LR(%d) = %g, want %g", tc.kind, tc.step, got, tc.want)
		}
	}
	c := DefaultConfig()
	if s := newSchedule(c, 95); s.Warmup != 10 {
		t.Errorf("warmup of 95 steps at ratio 0.1 = %d, want ⌈9.5⌉ = 10", s.Warmup)
	}
}

// TestBF16BaseWeights: with dtype bf16 the frozen base lives in the store as bfloat16 while the
// adapter and the AdamW state are float32.
func TestBF16BaseWeights(t *testing.T) {
	fx := newFixture(t, 4, "p1")
	c := fx.config("p1")
	c.DType = DTypeBF16
	store, _, tv, _, _ := setup(t, c)
	if v := store.GetVariable(llama.VariablePath("model.layers.0.self_attn.q_proj.weight")); v.DType() != dtypes.BFloat16 || v.Trainable {
		t.Errorf("base q_proj is %s (trainable %v), want frozen bfloat16", v.DType(), v.Trainable)
	}
	for i, p := range tv.params {
		if p.DType() != dtypes.Float32 || tv.mom[i].DType() != dtypes.Float32 || tv.vel[i].DType() != dtypes.Float32 {
			t.Fatalf("%s: adapter %s, moments %s/%s; want float32", tv.names[i], p.DType(), tv.mom[i].DType(), tv.vel[i].DType())
		}
	}
}

// TestProgressBar draws the bar into a buffer.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, 10)
	p.update(4, 0, false, 0.7, 0.5, ModeDPO)
	p.update(10, 90*time.Second, true, 0.5, 0.75, ModeDPO)
	p.finish()
	for _, want := range []string{"4/10 steps", "ETA ?", "10/10 steps", "loss 0.5000", "acc 0.75", "ETA 1m30s", "[==="} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("progress line %q lacks %q", buf.String(), want)
		}
	}
}

// TestStepClock: the ETA comes from the steps that met no new micro-batch shape (the others
// also compiled a program), and is unknown until there is one.
func TestStepClock(t *testing.T) {
	batch := func(rows, seq int) data.Batch { return data.Batch{Tokens: make([][]int32, rows), Seq: seq} }
	k := stepClock{shapes: map[[2]int]bool{{8, 256}: true}} // met by an earlier persona
	k.add([]data.Batch{batch(8, 288)}, time.Minute)         // compiles
	if _, ok := k.eta(10); ok {
		t.Fatal("an ETA from a step that compiled")
	}
	k.add([]data.Batch{batch(8, 256), batch(8, 288)}, 2*time.Second)
	k.add([]data.Batch{batch(8, 320)}, time.Hour) // compiles
	k.add([]data.Batch{batch(8, 320), batch(8, 256)}, 4*time.Second)
	if eta, ok := k.eta(10); !ok || eta != 30*time.Second {
		t.Errorf("eta of 10 steps = %v, %v; want 30s (the mean of the 2 s and 4 s steps)", eta, ok)
	}
}

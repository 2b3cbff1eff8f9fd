package llama

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
)

// fixture mirrors testdata/fixture.json, written by testdata/gen_fixture.py (plain PyTorch,
// float64, transformers' Llama semantics and TRL's DPO losses).
type fixture struct {
	Version int           `json:"version"`
	Cases   []fixtureCase `json:"cases"`
}

type fixtureCase struct {
	Name    string          `json:"name"`
	Config  llamacfg.Config `json:"config"`
	Weights map[string]struct {
		Shape []int     `json:"shape"`
		Data  []float32 `json:"data"`
	} `json:"weights"`
	InputIDs         [][]int32 `json:"input_ids"`
	AttentionMask    [][]int32 `json:"attention_mask"`
	CompletionMask   [][]int32 `json:"completion_mask"`
	Logits           []float64 `json:"logits"`
	LogPs            []float64 `json:"logps"`
	CompletionTokens []float64 `json:"completion_tokens"`
	RefChosen        []float64 `json:"ref_chosen_logps"`
	RefRejected      []float64 `json:"ref_rejected_logps"`
	DPO              []struct {
		LossType       LossType           `json:"loss_type"`
		Beta           float64            `json:"beta"`
		LabelSmoothing float64            `json:"label_smoothing"`
		RPOAlpha       float64            `json:"rpo_alpha"`
		Metrics        map[string]float64 `json:"metrics"`
	} `json:"dpo"`
}

func loadFixture(t *testing.T) fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if f.Version != 1 {
		t.Fatalf("fixture version %d, want 1: regenerate with testdata/gen_fixture.py", f.Version)
	}
	return f
}

// TestMatchesPyTorch checks logits, completion log-probs and every DPO loss and metric against
// the independent PyTorch implementation, for the model in float32 and in float64.
func TestMatchesPyTorch(t *testing.T) {
	f := loadFixture(t)
	be := backend(t)
	for _, fc := range f.Cases {
		for _, tol := range []struct {
			dtype    dtypes.DType
			rel, abs float64
		}{
			{dtypes.Float32, 1e-4, 1e-5},
			{dtypes.Float64, 1e-9, 1e-10},
		} {
			t.Run(fmt.Sprintf("%s/%s", fc.Name, tol.dtype), func(t *testing.T) {
				if err := fc.Config.Validate(); err != nil {
					t.Fatal(err)
				}
				weights := map[string]Weight{}
				for name, w := range fc.Weights {
					weights[name] = Weight{Shape: w.Shape, Data: w.Data}
				}
				store := model.NewStore()
				if err := LoadWeights(store, fc.Config, tol.dtype, weights); err != nil {
					t.Fatal(err)
				}
				m, err := New(fc.Config, tol.dtype, nil)
				if err != nil {
					t.Fatal(err)
				}
				ids := tensors.FromValue(fc.InputIDs)
				attn := tensors.FromValue(fc.AttentionMask)
				compl := tensors.FromValue(fc.CompletionMask)

				logitsExec, err := NewLogitsExec(be, store, m, AdapterOff)
				if err != nil {
					t.Fatal(err)
				}
				logits := flatFloats(t, logitsExec.MustCall1(ids, attn))
				if len(logits) != len(fc.Logits) {
					t.Fatalf("got %d logits, want %d", len(logits), len(fc.Logits))
				}
				bad := 0
				for i := range logits {
					if !near(logits[i], fc.Logits[i], tol.rel, tol.abs) {
						if bad < 5 {
							t.Errorf("logits[%d] = %.9g, want %.9g", i, logits[i], fc.Logits[i])
						}
						bad++
					}
				}
				if bad > 0 {
					t.Fatalf("%d of %d logits differ", bad, len(logits))
				}

				lpExec, err := NewSequenceLogProbsExec(be, store, m, AdapterOff)
				if err != nil {
					t.Fatal(err)
				}
				logps := flatFloats(t, lpExec.MustCall1(ids, attn, compl))
				for i := range logps {
					if !near(logps[i], fc.LogPs[i], tol.rel, tol.abs) {
						t.Errorf("logps[%d] = %.9g, want %.9g", i, logps[i], fc.LogPs[i])
					}
				}

				refC, refR := fc.RefChosen, fc.RefRejected
				for _, d := range fc.DPO {
					cfg := DPOConfig{Beta: d.Beta, LossType: d.LossType, LabelSmoothing: d.LabelSmoothing, RPOAlpha: d.RPOAlpha}
					eval, err := NewDPOEval(be, store, m, cfg)
					if err != nil {
						t.Fatal(err)
					}
					var rc, rr any = refC, refR
					if tol.dtype == dtypes.Float32 {
						rc, rr = toFloat32(refC), toFloat32(refR)
					}
					outs := eval.MustCall(ids, attn, compl, rc, rr)
					names := append([]string{"loss"}, DPOMetricNames...)
					for i, name := range names {
						got := flatFloats(t, outs[i])[0]
						if want := d.Metrics[name]; !near(got, want, tol.rel, tol.abs) {
							t.Errorf("%s β=%g ε=%g α=%g: %s = %.9g, want %.9g", d.LossType, d.Beta, d.LabelSmoothing, d.RPOAlpha, name, got, want)
						}
					}
				}
			})
		}
	}
}

func toFloat32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

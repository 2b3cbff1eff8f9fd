package model

import (
	"bytes"
	"math"
	"testing"

	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

func TestInitRandomDeterministic(t *testing.T) {
	c := tinyConfig(false)
	a := InitRandom(c, 7, safetensors.BF16)
	b := InitRandom(c, 7, safetensors.BF16)
	other := InitRandom(c, 8, safetensors.BF16)
	if len(a) != len(TensorSpecs(c)) {
		t.Fatalf("%d tensors, want %d", len(a), len(TensorSpecs(c)))
	}
	for i := range a {
		if a[i].Name != TensorSpecs(c)[i].Name {
			t.Errorf("tensor %d is %s, want TensorSpecs order", i, a[i].Name)
		}
		if !bytes.Equal(a[i].Data, b[i].Data) {
			t.Errorf("%s differs between two runs with the same seed", a[i].Name)
		}
		if len(a[i].Shape) == 2 && bytes.Equal(a[i].Data, other[i].Data) {
			t.Errorf("%s is the same for seeds 7 and 8", a[i].Name)
		}
	}
	// Same-shaped tensors must not share a stream.
	q0, q1 := a[2], a[11]
	if q0.Name != "model.layers.0.self_attn.q_proj.weight" || q1.Name != "model.layers.1.self_attn.q_proj.weight" {
		t.Fatalf("unexpected order: %s, %s", q0.Name, q1.Name)
	}
	if bytes.Equal(q0.Data, q1.Data) {
		t.Errorf("layers 0 and 1 got identical q_proj weights")
	}
	// A tensor's values do not depend on how many layers the model has.
	c3 := c
	c3.NumHiddenLayers = 3
	if got := InitRandom(c3, 7, safetensors.BF16)[11]; !bytes.Equal(got.Data, q1.Data) {
		t.Errorf("layer 1 q_proj changed when a third layer was added")
	}
}

func TestInitRandomDistribution(t *testing.T) {
	c := tinyConfig(false)
	c.VocabSize = 4096 // 65536 embedding values for a tight std estimate
	for _, tn := range InitRandom(c, 3, safetensors.F32) {
		vals, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if len(tn.Shape) == 1 { // RMSNorm
			for _, v := range vals {
				if v != 1 {
					t.Fatalf("%s has %g, want all ones", tn.Name, v)
				}
			}
			continue
		}
		var sum, sq float64
		for _, v := range vals {
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		n := float64(len(vals))
		mean := sum / n
		std := math.Sqrt(sq/n - mean*mean)
		// Tolerances of ~5 standard errors for the smallest tensor (128 values).
		if math.Abs(mean) > 5*InitStdDev/math.Sqrt(n) {
			t.Errorf("%s: mean %.5f, want ≈0", tn.Name, mean)
		}
		if math.Abs(std-InitStdDev) > 5*InitStdDev/math.Sqrt(2*n) {
			t.Errorf("%s: std %.5f, want ≈%g", tn.Name, std, InitStdDev)
		}
		if tn.Name == EmbedTokensName && math.Abs(std-InitStdDev) > 0.0003 {
			t.Errorf("embedding std %.5f, want 0.02 ± 0.0003", std)
		}
	}
}

func TestInitRandomPanicsOnBadDType(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("InitRandom with dtype I8 did not panic")
		}
	}()
	InitRandom(tinyConfig(true), 1, "I8")
}

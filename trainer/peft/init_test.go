package peft

import (
	"math"
	"reflect"
	"slices"
	"testing"
)

func TestNewRandom(t *testing.T) {
	mc := tinyModel()
	c := NewConfig(4, 8, 0.05, Projections...)
	a := NewRandom(c, mc, 42)
	if err := a.Check(mc); err != nil {
		t.Fatalf("NewRandom adapter fails Check: %v", err)
	}
	for _, m := range Modules(mc, Projections) {
		in, out, _ := ModuleShape(mc, m)
		bound := float32(1 / math.Sqrt(float64(in)))
		var maxAbs float32
		var sum float64
		for _, v := range a.A[m] {
			if v < -bound || v > bound {
				t.Fatalf("%s A value %g outside ±1/√%d = ±%g", m, v, in, bound)
			}
			maxAbs = max(maxAbs, float32(math.Abs(float64(v))))
			sum += float64(v)
		}
		// 32–48 draws from U(−b, b): the largest is near b and the mean near 0.
		if maxAbs < bound/2 {
			t.Errorf("%s max |A| = %g, want close to the bound %g", m, maxAbs, bound)
		}
		if mean := sum / float64(len(a.A[m])); math.Abs(mean) > float64(bound)/2 {
			t.Errorf("%s mean A = %g, want near 0", m, mean)
		}
		if len(a.B[m]) != out*c.R || slices.ContainsFunc(a.B[m], func(v float32) bool { return v != 0 }) {
			t.Errorf("%s B = %v, want %d zeros", m, a.B[m], out*c.R)
		}
	}

	if again := NewRandom(c, mc, 42); !reflect.DeepEqual(again, a) {
		t.Error("NewRandom is not deterministic for a fixed seed")
	}
	other := NewRandom(c, mc, 43)
	if slices.Equal(other.A["model.layers.0.self_attn.q_proj"], a.A["model.layers.0.self_attn.q_proj"]) {
		t.Error("seeds 42 and 43 gave the same lora_A")
	}
	// A module's values depend only on (seed, module path), not on the other targets.
	only := NewRandom(NewConfig(4, 8, 0, "down_proj"), mc, 42)
	if m := "model.layers.1.mlp.down_proj"; !slices.Equal(only.A[m], a.A[m]) {
		t.Error("lora_A of down_proj changed when the other targets were dropped")
	}
	// Distinct modules get distinct draws.
	if slices.Equal(a.A["model.layers.0.self_attn.q_proj"], a.A["model.layers.0.self_attn.k_proj"]) {
		t.Error("q_proj and k_proj share lora_A values")
	}
}

func TestNewRandomPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewRandom with r=0 did not panic")
		}
	}()
	NewRandom(NewConfig(0, 8, 0, "q_proj"), tinyModel(), 1)
}

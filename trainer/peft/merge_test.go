package peft

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// handModel is a 1-layer Llama whose down_proj is in=3 (intermediate), out=2 (hidden) and
// gate_proj in=2, out=3: small enough to merge by hand.
func handModel() model.Config {
	return model.Config{
		HiddenSize: 2, NumHiddenLayers: 1, NumAttentionHeads: 1, NumKeyValueHeads: 1,
		IntermediateSize: 3, VocabSize: 4, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 8,
	}
}

func TestMergeHandComputed(t *testing.T) {
	mc := handModel()
	const down, gate = "model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_proj"
	a := &Adapter{
		Config: NewConfig(1, 2, 0, "down_proj", "gate_proj"), // scale 2/1 = 2
		A: map[string][]float32{
			down: {1, 2, 3}, // [1, 3]
			gate: {1, -1},   // [1, 2]
		},
		B: map[string][]float32{
			down: {0.5, -1}, // [2, 1]
			gate: {1, 2, 3}, // [3, 1]
		},
	}
	weights := map[string][]float32{
		down + ".weight":                    {1, 1, 1, 0, 0, 0}, // [2, 3]
		gate + ".weight":                    {0, 0, 0, 0, 0, 0}, // [3, 2]
		"model.layers.0.mlp.up_proj.weight": {7, 7, 7, 7, 7, 7},
	}
	if err := Merge(weights, mc, a); err != nil {
		t.Fatal(err)
	}
	// B·A for down_proj = [[0.5 1 1.5] [-1 -2 -3]], ×2 = [[1 2 3] [-2 -4 -6]], plus W.
	// B·A for gate_proj = [[1 -1] [2 -2] [3 -3]], ×2.
	want := map[string][]float32{
		down + ".weight":                    {2, 3, 4, -2, -4, -6},
		gate + ".weight":                    {2, -2, 4, -4, 6, -6},
		"model.layers.0.mlp.up_proj.weight": {7, 7, 7, 7, 7, 7}, // not a target
	}
	for name, w := range want {
		if !slices.Equal(weights[name], w) {
			t.Errorf("%s = %v, want %v", name, weights[name], w)
		}
	}
}

func TestMergeRSLoRAScale(t *testing.T) {
	mc := handModel()
	const down = "model.layers.0.mlp.down_proj"
	c := NewConfig(4, 4, 0, "down_proj")
	c.UseRSLoRA = true // scale 4/√4 = 2
	a := &Adapter{Config: c,
		A: map[string][]float32{down: {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}, // [4, 3], only A[0][0]
		B: map[string][]float32{down: {1, 0, 0, 0, 0, 0, 0, 0}},             // [2, 4], only B[0][0]
	}
	w := map[string][]float32{down + ".weight": make([]float32, 6)}
	if err := Merge(w, mc, a); err != nil {
		t.Fatal(err)
	}
	if want := []float32{2, 0, 0, 0, 0, 0}; !slices.Equal(w[down+".weight"], want) {
		t.Errorf("merged = %v, want %v", w[down+".weight"], want)
	}
}

// TestMergeMatchesReference checks the unrolled merge against the textbook triple loop on
// every projection of a GQA model, with enough modules to run in parallel and r = 6 so both
// the four-row and the one-row paths run. The sums are float64 in a different order, so the
// float32 results may differ by an ulp.
func TestMergeMatchesReference(t *testing.T) {
	mc := tinyModel()
	a := trained(NewConfig(6, 12, 0, Projections...), 11)
	rng := rand.New(rand.NewPCG(1, 2))
	weights := map[string][]float32{}
	for _, s := range model.TensorSpecs(mc) {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		weights[s.Name] = w
	}
	orig := map[string][]float32{}
	for k, v := range weights {
		orig[k] = slices.Clone(v)
	}
	if err := Merge(weights, mc, a); err != nil {
		t.Fatal(err)
	}
	scale := a.Config.Scale()
	for _, m := range Modules(mc, Projections) {
		in, out, _ := ModuleShape(mc, m)
		r := a.Config.R
		for o := range out {
			for i := range in {
				var d float64
				for k := range r {
					d += float64(a.B[m][o*r+k]) * float64(a.A[m][k*in+i])
				}
				want := float32(float64(orig[m+".weight"][o*in+i]) + scale*d)
				if got := weights[m+".weight"][o*in+i]; math.Abs(float64(got-want)) > 1e-6*math.Abs(float64(want)) {
					t.Fatalf("%s[%d][%d] = %g, want %g", m, o, i, got, want)
				}
			}
		}
	}
	for _, name := range []string{"model.embed_tokens.weight", "model.layers.1.input_layernorm.weight", "model.norm.weight"} {
		if !slices.Equal(weights[name], orig[name]) {
			t.Errorf("%s changed, want it untouched", name)
		}
	}
}

func TestMergeErrorsChangeNothing(t *testing.T) {
	mc := handModel()
	a := trained2(mc)
	weights := map[string][]float32{
		"model.layers.0.mlp.down_proj.weight": {1, 2, 3, 4, 5}, // want 6 values
		// gate_proj missing
	}
	err := Merge(weights, mc, a)
	if err == nil {
		t.Fatal("Merge succeeded, want an error")
	}
	for _, w := range []string{"missing: [model.layers.0.mlp.gate_proj.weight]", "model.layers.0.mlp.down_proj.weight has 5 values, want [2 3] = 6"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Merge() = %q, want it to contain %q", err, w)
		}
	}
	if !slices.Equal(weights["model.layers.0.mlp.down_proj.weight"], []float32{1, 2, 3, 4, 5}) {
		t.Error("Merge changed a weight despite the error")
	}

	bad := trained2(mc)
	bad.Config.R = 0
	if err := Merge(map[string][]float32{}, mc, bad); err == nil || !strings.Contains(err.Error(), "r (0)") {
		t.Errorf("Merge with r=0 = %v, want a config error", err)
	}
}

// trained2 is a hand-model adapter on down_proj and gate_proj with non-zero A and B.
func trained2(mc model.Config) *Adapter {
	a := NewRandom(NewConfig(1, 1, 0, "down_proj", "gate_proj"), mc, 1)
	for _, m := range slices.Sorted(maps.Keys(a.B)) {
		for i := range a.B[m] {
			a.B[m][i] = 1
		}
	}
	return a
}

func TestMergeFile(t *testing.T) {
	mc := handModel()
	const down, gate = "model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_proj"
	a := &Adapter{
		Config: NewConfig(1, 2, 0, "down_proj", "gate_proj"),
		A:      map[string][]float32{down: {1, 2, 3}, gate: {1, -1}},
		B:      map[string][]float32{down: {0.5, -1}, gate: {1, 2, 3}},
	}
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{}}
	for _, s := range model.TensorSpecs(mc) {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		vals := make([]float32, n)
		if s.Name == down+".weight" {
			vals = []float32{1, 1, 1, 0, 0, 0}
		}
		tn, err := safetensors.FromFloat32(s.Name, s.Shape, vals, safetensors.BF16)
		if err != nil {
			t.Fatal(err)
		}
		f.Tensors[s.Name] = tn
	}
	embed := f.Tensors[model.EmbedTokensName]
	if err := MergeFile(f, mc, a); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]float32{
		down + ".weight": {2, 3, 4, -2, -4, -6},
		gate + ".weight": {2, -2, 4, -4, 6, -6},
	} {
		tn := f.Tensors[name]
		got, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if tn.DType != safetensors.BF16 || !slices.Equal(got, want) {
			t.Errorf("%s = %s %v, want BF16 %v", name, tn.DType, got, want)
		}
	}
	if e := f.Tensors[model.EmbedTokensName]; &e.Data[0] != &embed.Data[0] {
		t.Error("MergeFile replaced a tensor it does not adapt")
	}

	// A missing base weight is reported and nothing is replaced.
	delete(f.Tensors, gate+".weight")
	before := f.Tensors[down+".weight"]
	if err := MergeFile(f, mc, a); err == nil || !strings.Contains(err.Error(), "missing: ["+gate+".weight]") {
		t.Errorf("MergeFile() = %v, want a missing-weight error", err)
	}
	if after := f.Tensors[down+".weight"]; &after.Data[0] != &before.Data[0] {
		t.Error("MergeFile replaced a tensor despite the error")
	}
}

func TestMergeZeroBIsIdentity(t *testing.T) {
	mc := tinyModel()
	a := NewRandom(NewConfig(4, 8, 0, Projections...), mc, 3)
	weights := map[string][]float32{}
	for _, m := range Modules(mc, Projections) {
		in, out, _ := ModuleShape(mc, m)
		w := make([]float32, in*out)
		for i := range w {
			w[i] = float32(math.Sin(float64(i)))
		}
		weights[m+".weight"] = w
	}
	orig := map[string][]float32{}
	for k, v := range weights {
		orig[k] = slices.Clone(v)
	}
	if err := Merge(weights, mc, a); err != nil {
		t.Fatal(err)
	}
	for k := range weights {
		if !slices.Equal(weights[k], orig[k]) {
			t.Errorf("%s changed by a freshly initialised adapter (B = 0)", k)
		}
	}
}

// BenchmarkMerge merges an r=16 adapter on all seven projections of one Llama-3.2-1B-sized
// decoder layer (hidden 2048, 32 heads, 8 kv heads, intermediate 8192): ≈ 1.9 GFLOP.
func BenchmarkMerge(b *testing.B) {
	mc := model.Config{
		HiddenSize: 2048, NumHiddenLayers: 1, NumAttentionHeads: 32, NumKeyValueHeads: 8,
		IntermediateSize: 8192, VocabSize: 16, RMSNormEps: 1e-5, RopeTheta: 500000, MaxPositionEmbeddings: 8,
	}
	a := NewRandom(NewConfig(16, 32, 0, Projections...), mc, 1)
	weights := map[string][]float32{}
	for _, m := range Modules(mc, Projections) {
		in, out, _ := ModuleShape(mc, m)
		weights[m+".weight"] = make([]float32, in*out)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := Merge(weights, mc, a); err != nil {
			b.Fatal(err)
		}
	}
}

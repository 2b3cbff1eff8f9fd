package llama

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestDrawDropoutMasks: one Bool mask per adapted projection, shaped [rows, in], whose share of
// false (dropped) is the drop rate; a function of the seed alone, different across projections
// and seeds.
func TestDrawDropoutMasks(t *testing.T) {
	lora := LoRAConfig{Rank: 4, Alpha: 8, Dropout: 0.25, TargetModules: []string{"q_proj", "o_proj", "down_proj"}}
	m, err := New(tinyConfig(), dtypes.Float32, &lora)
	if err != nil {
		t.Fatal(err)
	}
	const rows = 1000
	specs := m.DropoutMasks(rows)
	var names []string
	for _, s := range specs {
		names = append(names, s.Module)
		in := 32 // hidden
		if s.Module[len(s.Module)-9:] == "down_proj" {
			in = 64 // intermediate
		}
		if s.Dims != [2]int{rows, in} {
			t.Errorf("%s: dims %v, want [%d %d]", s.Module, s.Dims, rows, in)
		}
	}
	want := []string{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.down_proj",
		"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.o_proj", "model.layers.1.mlp.down_proj"}
	if !slices.Equal(names, want) {
		t.Fatalf("masks %v, want %v", names, want)
	}
	draw := func(seed uint64) [][]bool {
		ts := DrawDropoutMasks(specs, lora.Dropout, seed)
		out := make([][]bool, len(ts))
		for i, x := range ts {
			if !slices.Equal(x.Shape().Dimensions, specs[i].Dims[:]) || x.DType() != dtypes.Bool {
				t.Fatalf("mask %d is %s, want Bool%v", i, x.Shape(), specs[i].Dims)
			}
			out[i] = tensors.MustCopyFlatData[bool](x)
		}
		return out
	}
	a, again, b := draw(1), draw(1), draw(2)
	zeros, total := 0, 0
	for i := range a {
		if !slices.Equal(a[i], again[i]) {
			t.Errorf("mask %d: the same seed drew different masks", i)
		}
		if slices.Equal(a[i], b[i]) {
			t.Errorf("mask %d: seeds 1 and 2 drew the same mask", i)
		}
		if i > 0 && slices.Equal(a[i][:32*rows], a[i-1][:32*rows]) {
			t.Errorf("masks %d and %d are the same", i-1, i)
		}
		for _, keep := range a[i] {
			if !keep {
				zeros++
			}
		}
		total += len(a[i])
	}
	// 256 000 draws: the share of zeros has a standard deviation of 0.00086.
	if share := float64(zeros) / float64(total); math.Abs(share-lora.Dropout) > 0.005 {
		t.Errorf("share of dropped inputs %.4f, want %.2f", share, lora.Dropout)
	}
	if s := m.withoutDropout().DropoutMasks(rows); len(s) != 0 {
		t.Errorf("a model without dropout lists %d masks", len(s))
	}
	// A length that is not a multiple of four takes the first lanes of its last draw.
	for n := range 9 {
		short, long := make([]bool, n), make([]bool, 8)
		drawMask(rand.NewPCG(1, 2), short, 30000)
		drawMask(rand.NewPCG(1, 2), long, 30000)
		if !slices.Equal(short, long[:n]) {
			t.Errorf("drawMask of %d elements: %v, want the first %d of %v", n, short, n, long)
		}
	}
	// p is quantised to 2⁻¹⁶: 0.05 becomes 3277/65536.
	if got, want := keepScale(0.05), 65536.0/(65536-3277); got != want {
		t.Errorf("keepScale(0.05) = %v, want %v", got, want)
	}
	if dropThreshold(0) != 0 || dropThreshold(math.Nextafter(1, 0)) != math.MaxUint16 {
		t.Errorf("dropThreshold(0), (1−ε) = %d, %d", dropThreshold(0), dropThreshold(math.Nextafter(1, 0)))
	}
}

// TestDropoutMasksInLogits runs a training forward pass with masks fed as graph inputs: masks
// keeping every input give the adapter with α scaled by 1/(1−p) (inverted dropout), masks
// dropping every input the adapter off, and drawn masks neither.
func TestDropoutMasksInLogits(t *testing.T) {
	lora := LoRAConfig{Rank: 4, Alpha: 8, Dropout: 0.2, TargetModules: []string{"q_proj", "v_proj", "o_proj", "up_proj"}}
	store, m := newTinyModel(t, dtypes.Float64, lora)
	setLoRAB(t, store, m, 3, 0.5)
	const b, s = 2, 5
	ids := make([]int32, b*s)
	for i := range ids {
		ids[i] = int32(i*37) % 97
	}
	idsT := tensors.FromFlatDataAndDimensions(ids, b, s)
	attn := tensors.FromFlatDataAndDimensions(slices.Repeat([]int32{1}, b*s), b, s)
	specs := m.DropoutMasks(b * s)

	logits := func(m *Model, adapter Adapter, masks []*tensors.Tensor) []float64 {
		exec, err := model.NewExec(backend(t), store, func(scope *model.Scope, inputs []*graph.Node) *graph.Node {
			scope.SetTraining(inputs[0].Graph(), true)
			mm := m
			if len(masks) > 0 {
				byModule := map[string]*graph.Node{}
				for i, sp := range specs {
					byModule[sp.Module] = inputs[2+i]
				}
				mm = m.WithDropoutMasks(byModule)
			}
			return mm.Logits(scope, inputs[0], inputs[1], adapter)
		})
		if err != nil {
			t.Fatal(err)
		}
		args := []any{idsT, attn}
		for _, x := range masks {
			args = append(args, x)
		}
		out, err := exec.Exec(args...)
		if err != nil {
			t.Fatal(err)
		}
		return flatFloats(t, out[0])
	}
	constMasks := func(keep bool) []*tensors.Tensor {
		var out []*tensors.Tensor
		for _, sp := range specs {
			out = append(out, tensors.FromFlatDataAndDimensions(slices.Repeat([]bool{keep}, sp.Dims[0]*sp.Dims[1]), sp.Dims[:]...))
		}
		return out
	}
	scaled := lora
	scaled.Alpha *= keepScale(lora.Dropout)
	scaled.Dropout = 0
	ms, err := New(m.Config, m.DType, &scaled)
	if err != nil {
		t.Fatal(err)
	}
	ones, scaledAdapter := logits(m, AdapterOn, constMasks(true)), logits(ms, AdapterOn, nil)
	zeros, off := logits(m, AdapterOn, constMasks(false)), logits(m, AdapterOff, nil)
	random := logits(m, AdapterOn, DrawDropoutMasks(specs, lora.Dropout, 7))
	maxDiff := func(a, b []float64) float64 {
		d := 0.0
		for i := range a {
			d = max(d, math.Abs(a[i]-b[i]))
		}
		return d
	}
	if d := maxDiff(ones, scaledAdapter); d > 1e-12 {
		t.Errorf("all-ones masks vs α/(1−p): logits differ by %g", d)
	}
	if d := maxDiff(zeros, off); d > 1e-12 {
		t.Errorf("all-zero masks vs adapter off: logits differ by %g", d)
	}
	if d := maxDiff(ones, off); d < 1e-3 {
		t.Fatalf("the adapter changes the logits by only %g; the test needs it to matter", d)
	}
	if maxDiff(random, ones) < 1e-6 || maxDiff(random, off) < 1e-6 {
		t.Errorf("drawn masks give the logits of all-ones or all-zero masks")
	}
}

// BenchmarkDrawDropoutMasks draws one micro-batch's masks for a 4-layer, hidden-256 model with
// the default four adapted projections: 8 sequences of 192 tokens.
func BenchmarkDrawDropoutMasks(b *testing.B) {
	cfg := tinyConfig()
	cfg.HiddenSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.IntermediateSize = 256, 4, 8, 4, 688
	lora := DefaultLoRAConfig()
	m, err := New(cfg, dtypes.Float32, &lora)
	if err != nil {
		b.Fatal(err)
	}
	specs := m.DropoutMasks(8 * 192)
	n := 0
	for _, s := range specs {
		n += s.Dims[0] * s.Dims[1]
	}
	for b.Loop() {
		DrawDropoutMasks(specs, lora.Dropout, 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/element")
}

// TestDropoutMasksDrawnInGraph checks the masks a training pass draws in the graph (XLA's
// path): one per adapted projection, of its input's shape, dropping round(p·2¹⁶)/2¹⁶ of the
// elements (within five standard deviations), independent of each other, and a function of
// the store's RNG state.
func TestDropoutMasksDrawnInGraph(t *testing.T) {
	lora := LoRAConfig{Rank: 2, Alpha: 4, Dropout: 0.3, TargetModules: []string{"q_proj", "up_proj"}}
	store, m := newTinyModel(t, dtypes.Float32, lora)
	const rows = 500
	specs := m.DropoutMasks(rows)
	exec, err := model.NewExec(backend(t), store, func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		scope.SetTraining(inputs[0].Graph(), true) // reads the RNG state's current value
		masks := m.drawDropoutMasks(scope, inputs[0].Graph(), rows)
		var out []*graph.Node
		for _, s := range specs {
			out = append(out, masks[s.Module])
		}
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	draw := func(seed int64) [][]bool {
		if err := store.SetRNGStateFromSeed(seed); err != nil {
			t.Fatal(err)
		}
		var out [][]bool
		for i, x := range exec.MustCall(tensors.FromValue(int32(0))) {
			if !slices.Equal(x.Shape().Dimensions, specs[i].Dims[:]) {
				t.Fatalf("mask %s is %s, want %v", specs[i].Module, x.Shape(), specs[i].Dims)
			}
			out = append(out, tensors.MustCopyFlatData[bool](x))
		}
		return out
	}
	a, again, other := draw(1), draw(1), draw(2)
	q := float64(dropThreshold(lora.Dropout)) / (1 << 16)
	for i, keep := range a {
		dropped := 0
		for _, k := range keep {
			if !k {
				dropped++
			}
		}
		n := float64(len(keep))
		if sd := math.Sqrt(n * q * (1 - q)); math.Abs(float64(dropped)-n*q) > 5*sd {
			t.Errorf("%s: %d of %.0f dropped, want %.0f ± %.0f", specs[i].Module, dropped, n, n*q, 5*sd)
		}
		if !slices.Equal(keep, again[i]) {
			t.Errorf("%s: the same RNG state drew another mask", specs[i].Module)
		}
		if slices.Equal(keep, other[i]) {
			t.Errorf("%s: another RNG state drew the same mask", specs[i].Module)
		}
	}
	if len(a) != 2*m.Config.NumHiddenLayers {
		t.Fatalf("%d masks, want 2 per layer", len(a))
	}
	if slices.Equal(a[0][:64], a[1][:64]) {
		t.Errorf("the q_proj and up_proj masks of layer 0 start alike: not independent")
	}
}

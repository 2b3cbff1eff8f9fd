package llama

import (
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/attention/pos"
	"github.com/gomlx/gomlx/ml/model"

	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
)

var (
	backendOnce sync.Once
	testBackend compute.Backend
)

// backend returns the backend named by $GOMLX_BACKEND (the pure-Go one in tests).
func backend(t testing.TB) compute.Backend {
	t.Helper()
	backendOnce.Do(func() {
		b, err := compute.New()
		if err != nil {
			t.Fatalf("compute backend: %v", err)
		}
		testBackend = b
	})
	return testBackend
}

// tinyConfig is hidden 32, 2 layers, 4 heads over 2 key/value heads, vocabulary 97, with llama3
// rope scaling whose three frequency regimes all occur at head_dim 8.
func tinyConfig() llamacfg.Config {
	return llamacfg.Config{
		ModelType: "llama", HiddenSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		IntermediateSize: 64, VocabSize: 97, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 1024,
		RopeScaling: &llamacfg.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 128},
	}
}

// randomWeights draws every base weight of cfg from N(0, std²), norms from 1 + N(0, 0.1²): larger
// than InitWeights' 0.02 so attention and the MLP do something visible.
func randomWeights(cfg llamacfg.Config, seed uint64, std float64) map[string]Weight {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := map[string]Weight{}
	for _, s := range ExpectedWeights(cfg) {
		w := Weight{Shape: s.Shape, Data: make([]float32, product(s.Shape))}
		for j := range w.Data {
			if len(s.Shape) == 1 {
				w.Data[j] = float32(1 + 0.1*rng.NormFloat64())
			} else {
				w.Data[j] = float32(std * rng.NormFloat64())
			}
		}
		out[s.Name] = w
	}
	return out
}

// setLoRAB overwrites every lora_B with N(0, std²) values (std 0 restores the zero init).
func setLoRAB(t *testing.T, store *model.Store, m *Model, seed uint64, std float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 9))
	for _, s := range LoRAWeightSpecs(m.Config, *m.LoRA) {
		if !strings.HasSuffix(s.Name, "lora_B.weight") {
			continue
		}
		w := Weight{Shape: s.Shape, Data: make([]float32, product(s.Shape))}
		for j := range w.Data {
			w.Data[j] = float32(std * rng.NormFloat64())
		}
		if err := setVariable(store, s.Name, m.DType, w, true); err != nil {
			t.Fatal(err)
		}
	}
}

// newTinyModel builds a store with random base weights and a LoRA adapter (B = 0).
func newTinyModel(t *testing.T, dtype dtypes.DType, lora LoRAConfig) (*model.Store, *Model) {
	t.Helper()
	cfg := tinyConfig()
	m, err := New(cfg, dtype, &lora)
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	if err := LoadWeights(store, cfg, dtype, randomWeights(cfg, 1, 0.3)); err != nil {
		t.Fatal(err)
	}
	if err := AddLoRA(store, m, 2); err != nil {
		t.Fatal(err)
	}
	return store, m
}

func flatFloats(t *testing.T, x *tensors.Tensor) []float64 {
	t.Helper()
	switch x.DType() {
	case dtypes.Float32:
		f := tensors.MustCopyFlatData[float32](x)
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](x)
	}
	t.Fatalf("unexpected dtype %s", x.DType())
	return nil
}

// near reports |got − want| ≤ abs + rel·|want|.
func near(got, want, rel, abs float64) bool {
	return math.Abs(got-want) <= abs+rel*math.Abs(want)
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		lora LoRAConfig
		dpo  DPOConfig
		want string
	}{
		{"lora rank", LoRAConfig{Rank: 0, Alpha: 16, TargetModules: []string{"q_proj"}}, DefaultDPOConfig(), "lora_r (0)"},
		{"lora module", LoRAConfig{Rank: 4, Alpha: 8, TargetModules: []string{"qkv"}}, DefaultDPOConfig(), `"qkv" is not a Llama projection`},
		{"beta", DefaultLoRAConfig(), DPOConfig{Beta: 0, LossType: LossSigmoid}, "beta (0)"},
		{"loss type", DefaultLoRAConfig(), DPOConfig{Beta: 0.1, LossType: "kto"}, `loss_type "kto"`},
		{"robust eps", DefaultLoRAConfig(), DPOConfig{Beta: 0.1, LossType: LossRobust, LabelSmoothing: 0.5}, "must be < 0.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.lora.Validate()
			if err == nil {
				err = tc.dpo.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadWeightsReportsEveryProblem(t *testing.T) {
	cfg := tinyConfig()
	w := randomWeights(cfg, 1, 0.1)
	delete(w, "model.norm.weight")
	delete(w, "model.layers.1.mlp.up_proj.weight")
	w["lm_head.weight"] = Weight{Shape: []int{3, 3}, Data: make([]float32, 9)}
	err := LoadWeights(model.NewStore(), cfg, dtypes.Float32, w)
	if err == nil {
		t.Fatal("got nil error, want missing and mismatched weights")
	}
	for _, want := range []string{"missing weight model.norm.weight", "missing weight model.layers.1.mlp.up_proj.weight", "lm_head.weight has shape [3 3], want [97 32]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestNamesMapOneToOne(t *testing.T) {
	for _, name := range []string{"model.layers.11.self_attn.q_proj.lora_A.weight", "lm_head.weight"} {
		p := VariablePath(name)
		if got := HFName(p); got != name {
			t.Errorf("HFName(VariablePath(%q)) = %q (path %q), want the name back", name, got, p)
		}
	}
	if got, want := VariablePath("model.norm.weight"), "/model/norm/weight"; got != want {
		t.Errorf("VariablePath = %q, want %q", got, want)
	}
	lora := DefaultLoRAConfig()
	specs := LoRAWeightSpecs(tinyConfig(), lora)
	if got, want := len(specs), 2*4*2; got != want {
		t.Fatalf("got %d LoRA tensors, want %d", got, want)
	}
	if s := specs[2]; s.Name != "model.layers.0.self_attn.k_proj.lora_A.weight" || s.Shape[0] != 8 || s.Shape[1] != 32 {
		t.Errorf("got %s %v, want model.layers.0.self_attn.k_proj.lora_A.weight [8 32]", s.Name, s.Shape)
	}
	if s := specs[3]; s.Shape[0] != 16 || s.Shape[1] != 8 {
		t.Errorf("got %s %v, want k_proj lora_B [16 8] (2 kv heads × 8)", s.Name, s.Shape)
	}
}

func TestRoPEInvFreqLlama3Regimes(t *testing.T) {
	inv := RoPEInvFreq(tinyConfig())
	// θ=1e4, D=8: 1, 0.1, 0.01, 0.001; wavelengths 6.3 (kept), 62.8 (smoothed), 628 and 6283 (÷8).
	smooth := (128/(2*math.Pi/0.1) - 1) / 3
	want := []float64{1, (1-smooth)*0.1/8 + smooth*0.1, 0.01 / 8, 0.001 / 8}
	for i := range want {
		if !near(inv[i], want[i], 1e-12, 0) {
			t.Errorf("inv_freq[%d] = %g, want %g", i, inv[i], want[i])
		}
	}
}

// TestReroutedGradientsMatchDerived checks the products whose gradients are computed by hand
// (gradientsVia) against the gradients GoMLX derives for the plain products, in float64: the
// attention scores, softmax times values (with masked entries) and SwiGLU, for every input;
// and the hand-written rotary embeddings
// (value and derived gradient) against GoMLX's own pos.RoPEWithCosSin.
func TestReroutedGradientsMatchDerived(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	random := func(dims ...int) *tensors.Tensor {
		d := make([]float64, product(dims))
		for i := range d {
			d[i] = rng.NormFloat64()
		}
		return tensors.FromFlatDataAndDimensions(d, dims...)
	}
	masked := func(dims ...int) *tensors.Tensor { // random, with the lowest float64 in every third entry
		d := make([]float64, product(dims))
		for i := range d {
			d[i] = rng.NormFloat64()
			if i%3 == 0 {
				d[i] = -math.MaxFloat64
			}
		}
		return tensors.FromFlatDataAndDimensions(d, dims...)
	}
	cfg, seq := tinyConfig(), 6
	cases := []struct {
		name            string
		rerouted, plain func(a, b *graph.Node) *graph.Node
		a, b            *tensors.Tensor
	}{
		{"attentionScores", attentionScores,
			func(q, k *graph.Node) *graph.Node {
				return graph.DotGeneral(q, []int{4}, []int{0, 1}, k, []int{3}, []int{0, 1})
			},
			random(2, 2, 3, 5, 4), random(2, 2, 5, 4)},
		{"swiGLU", swiGLU,
			func(gate, up *graph.Node) *graph.Node { return graph.Mul(graph.Mul(gate, graph.Sigmoid(gate)), up) },
			random(7, 6), random(7, 6)},
		// The logits carry a large negative entry where the mask would.
		{"attend", attend,
			func(x, v *graph.Node) *graph.Node {
				return graph.DotGeneral(graph.Softmax(x, -1), []int{4}, []int{0, 1}, v, []int{2}, []int{0, 1})
			},
			masked(2, 2, 3, 5, 5), random(2, 2, 5, 4)},
		// rotary has one input, fed the sum of both; GoMLX's takes the half tables [S, D/2].
		{"rotary", func(a, b *graph.Node) *graph.Node {
			cos, sin := RoPECosSin(a.Graph(), cfg, seq, dtypes.Float64)
			return rotary(graph.Add(a, b), graph.ExpandLeftToRank(cos, 4), graph.ExpandLeftToRank(sin, 4))
		}, func(a, b *graph.Node) *graph.Node {
			inv := RoPEInvFreq(cfg)
			cos, sin := make([]float64, seq*len(inv)), make([]float64, seq*len(inv))
			for p := range seq {
				for i, f := range inv {
					cos[p*len(inv)+i], sin[p*len(inv)+i] = math.Cos(float64(p)*f), math.Sin(float64(p)*f)
				}
			}
			g := a.Graph()
			rope := pos.NewRoPEWithCosSin(graph.Reshape(graph.Const(g, cos), seq, -1), graph.Reshape(graph.Const(g, sin), seq, -1))
			return rope.Encode(graph.Add(a, b), 2)
		}, random(2, 3, seq, cfg.HeadDimension()), random(2, 3, seq, cfg.HeadDimension())},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			grads := func(f func(a, b *graph.Node) *graph.Node) []*tensors.Tensor {
				exec, err := graph.NewExec(backend(t), func(a, b, weights *graph.Node) []*graph.Node {
					y := f(a, b)
					loss := graph.ReduceAllSum(graph.Mul(y, weights)) // a loss with a non-uniform gradient
					return append([]*graph.Node{y}, graph.Gradient(loss, a, b)...)
				})
				if err != nil {
					t.Fatal(err)
				}
				shape := exec.MustCall(c.a, c.b, 0.0)[0].Shape()
				return exec.MustCall(c.a, c.b, random(shape.Dimensions...))
			}
			rng = rand.New(rand.NewPCG(5, 5))
			got := grads(c.rerouted)
			rng = rand.New(rand.NewPCG(5, 5))
			want := grads(c.plain)
			for i, name := range []string{"value", "gradient of the first input", "gradient of the second input"} {
				g, w := flatFloats(t, got[i]), flatFloats(t, want[i])
				if len(g) != len(w) || !got[i].Shape().Equal(want[i].Shape()) {
					t.Fatalf("%s: shape %s, want %s", name, got[i].Shape(), want[i].Shape())
				}
				for j := range g {
					if !near(g[j], w[j], 1e-12, 1e-12) {
						t.Fatalf("%s[%d] = %g, want %g", name, j, g[j], w[j])
					}
				}
			}
		})
	}
}

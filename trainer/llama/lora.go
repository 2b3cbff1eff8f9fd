package llama

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"

	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
)

// LoRAConfig is PEFT's LoraConfig subset we support: y = x·Wᵀ + (Alpha/Rank)·dropout(x)·Aᵀ·Bᵀ
// on each targeted projection, A [R, in] Kaiming-uniform, B [out, R] zero.
type LoRAConfig struct {
	Rank    int     `json:"r"`
	Alpha   float64 `json:"lora_alpha"`
	Dropout float64 `json:"lora_dropout"` // on the adapter's input, only in training graphs
	// TargetModules are projection names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
	TargetModules []string `json:"target_modules"`
}

// projections lists the Llama projections LoRA can target, with the module scope they live in.
var projections = map[string]string{
	"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
	"gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp",
}

// DefaultLoRAConfig is r=8, alpha=16, dropout 0.05 on the attention projections.
func DefaultLoRAConfig() LoRAConfig {
	return LoRAConfig{Rank: 8, Alpha: 16, Dropout: 0.05, TargetModules: []string{"q_proj", "k_proj", "v_proj", "o_proj"}}
}

// Scale is Alpha/Rank, the factor on the adapter's output.
func (c LoRAConfig) Scale() float64 { return c.Alpha / float64(c.Rank) }

// Targets reports whether the projection (e.g. "q_proj") carries an adapter.
func (c LoRAConfig) Targets(projection string) bool {
	return slices.Contains(c.TargetModules, projection)
}

// Validate checks the config with messages that name the field to fix.
func (c LoRAConfig) Validate() error {
	var errs []error
	if c.Rank <= 0 {
		errs = append(errs, fmt.Errorf("lora_r (%d) must be > 0", c.Rank))
	}
	if !(c.Alpha > 0) {
		errs = append(errs, fmt.Errorf("lora_alpha (%g) must be > 0", c.Alpha))
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		errs = append(errs, fmt.Errorf("lora_dropout (%g) must be in [0, 1)", c.Dropout))
	}
	if len(c.TargetModules) == 0 {
		errs = append(errs, errors.New("target_modules is empty: name at least one projection (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)"))
	}
	for _, t := range c.TargetModules {
		if _, ok := projections[t]; !ok {
			errs = append(errs, fmt.Errorf("target_modules: %q is not a Llama projection (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", t))
		}
	}
	return errors.Join(errs...)
}

// LoRAWeightSpecs lists the adapter tensors for cfg with PEFT's names minus the
// "base_model.model." prefix, e.g. "model.layers.0.self_attn.q_proj.lora_A.weight" [R, in].
func LoRAWeightSpecs(cfg llamacfg.Config, lora LoRAConfig) []WeightSpec {
	shapes := map[string]WeightSpec{}
	for _, s := range ExpectedWeights(cfg) {
		shapes[s.Name] = s
	}
	var specs []WeightSpec
	for l := range cfg.NumHiddenLayers {
		for _, proj := range []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} {
			if !lora.Targets(proj) {
				continue
			}
			module := fmt.Sprintf("model.layers.%d.%s.%s", l, projections[proj], proj)
			w := shapes[module+".weight"].Shape // [out, in]
			specs = append(specs,
				WeightSpec{module + ".lora_A.weight", []int{lora.Rank, w[1]}},
				WeightSpec{module + ".lora_B.weight", []int{w[0], lora.Rank}})
		}
	}
	return specs
}

// AddLoRA creates the adapter variables of m in store, trainable: lora_A Kaiming-uniform with
// bound 1/√in (PEFT's kaiming_uniform_(a=√5)), lora_B zero, so the adapter starts as a no-op.
// Existing adapter variables are re-initialised.
func AddLoRA(store *model.Store, m *Model, seed uint64) error {
	if m.LoRA == nil {
		return errors.New("llama: AddLoRA on a model without a LoRA config")
	}
	rng := rand.New(rand.NewPCG(seed, 0x10a4))
	for _, s := range LoRAWeightSpecs(m.Config, *m.LoRA) {
		w := Weight{Shape: s.Shape, Data: make([]float32, product(s.Shape))}
		if strings.HasSuffix(s.Name, ".lora_A.weight") {
			bound := kaimingUniformBound(s.Shape[1])
			for j := range w.Data {
				w.Data[j] = float32((2*rng.Float64() - 1) * bound)
			}
		}
		if err := setVariable(store, s.Name, m.DType, w, true); err != nil {
			return err
		}
	}
	return nil
}

// weight returns the variable scope/name of shape dims as a graph node. Base weights are
// (re)marked frozen unless the model trains them: a GoMLX checkpoint restores every variable
// as trainable.
func (m *Model) weight(g *Graph, scope *model.Scope, name string, trainable bool, dims ...int) *Node {
	v := scope.GetVariable(name)
	if v == nil {
		Panicf("llama: no variable for %s: load the base weights (LoadWeights/InitWeights) and the adapter (AddLoRA) first",
			HFName(model.JoinPath(scope.Scope(), name)))
	}
	// A frozen weight may be stored narrower than the computation (bfloat16 base weights, as
	// trainer/train's --dtype bf16 keeps them): it is widened to m.DType where it is read.
	stored := v.DType()
	narrow := !trainable && stored != m.DType && (stored == dtypes.BFloat16 || stored == dtypes.Float16)
	if !slices.Equal(v.Shape().Dimensions, dims) || (stored != m.DType && !narrow) {
		Panicf("llama: variable %s is %s, want %s%v", v.Path(), v.Shape(), m.DType, dims)
	}
	v.Trainable = trainable
	if n, ok := m.params[v.Path()]; ok { // a checkpointed layer's own input (see checkpointLayer)
		return n
	}
	if narrow {
		return ConvertDType(v.NodeValue(g), m.DType)
	}
	return v.NodeValue(g)
}

// projection names one bias-free projection for [Model.project]: the module scope holding its
// weight [out, in] (and lora_A, lora_B when the adapter targets it), its name and its width.
type projection struct {
	scope *model.Scope
	name  string
	out   int
}

// proj is projection{scope.At(name), name, out}, for the projections of a layer's scope.
func proj(scope *model.Scope, name string, out int) projection {
	return projection{scope.At("%s", name), name, out}
}

// project computes the bias-free projections ps of the same rows x [N, in], each [N, p.out]:
// x·Wᵀ with W = p.scope/weight [out, in], plus the LoRA update when the model's adapter
// targets p and adapter is on,
//
//	(α/R) · dropout(x)·Aᵀ·Bᵀ,  A = p.scope/lora_A/weight [R, in], B = p.scope/lora_B/weight [out, R],
//
// dropout applying only in training graphs (see [Model.WithDropoutMasks] for where it is
// drawn), as one block whose backward is written out (see [gradientsViaN]):
//
//	dx  = Σ_p dy_p·W_p + mask_p ⊙ (dza_p·A_p),   dza_p = (α/R)·dy_p·B_p      [N, in], [N, R]
//	dA  = dza_pᵀ·dropout(x)   dB = dy_pᵀ·za_p   dW = dy_pᵀ·x (when the base trains)
//
// GoMLX's derivation of each product's input gradient ends in an identity-permutation
// Transpose, which its Go backend runs as a copy of the [N, in] result, and the input of a
// shared projection (q, k, v; gate, up) would take one per product. The weight gradients
// contract the leading N axis of both factors, and the derived ones made the backend
// transpose both; here only the narrower factor is transposed (see [weightGradient]). A
// frozen W (the base, unless it trains) is no input of the block: an identity on it would
// make the backend copy the whole weight in every pass, as a variable's buffer is never the
// backend's to hand on. x should have no reader but the block, for the same reason.
func (m *Model) project(x *Node, adapter Adapter, ps ...projection) []*Node {
	g := x.Graph()
	in := x.Shape().Dimensions[1]
	type term struct {
		w                *Node // the weight: the variable's value, unless an input
		wIdx, aIdx, bIdx int   // indices among the block's inputs, -1 for none
		mask             *Node // dropout mask [N, in], true where kept
		scale            float64
		xd, za, dza      *Node // dropout(x) [N, in] and (α/R)·xd·Aᵀ [N, R]; dza once built
	}
	xs := []*Node{x}
	ts := make([]*term, len(ps))
	for i, p := range ps {
		t := &term{wIdx: -1, aIdx: -1, bIdx: -1}
		t.w = m.weight(g, p.scope, "weight", m.TrainBase, p.out, in) // [out, in]
		if m.TrainBase {
			t.wIdx, xs = len(xs), append(xs, t.w)
		}
		if bool(adapter) && m.LoRA != nil && m.LoRA.Targets(p.name) {
			r := m.LoRA.Rank
			a := m.weight(g, p.scope.At("lora_A"), "weight", true, r, in)    // [R, in]
			b := m.weight(g, p.scope.At("lora_B"), "weight", true, p.out, r) // [out, R]
			t.aIdx, t.bIdx, xs = len(xs), len(xs)+1, append(xs, a, b)
			t.mask, t.scale = m.loraDropout(p.scope, HFName(p.scope.Scope()), x)
		}
		ts[i] = t
	}
	weightOf := func(t *term, in []*Node) *Node {
		if t.wIdx >= 0 {
			return in[t.wIdx]
		}
		return t.w
	}
	forward := func(in []*Node) []*Node {
		ys := make([]*Node, len(ts))
		for i, t := range ts {
			y := DotGeneral(in[0], []int{1}, nil, weightOf(t, in), []int{1}, nil) // [N, out]
			if t.aIdx >= 0 {
				t.xd = in[0]
				if t.mask != nil {
					t.xd = Where(t.mask, in[0], ZerosLike(in[0]))
				}
				// The factor goes on the rank-wide za rather than on the out-wide update: one
				// pass over [N, R] instead of [N, out], forward and backward.
				t.za = MulScalar(DotGeneral(t.xd, []int{1}, nil, in[t.aIdx], []int{1}, nil), t.scale) // [N, R]
				y = Add(y, DotGeneral(t.za, []int{1}, nil, in[t.bIdx], []int{1}, nil))                // [N, out]
			}
			ys[i] = y
		}
		return ys
	}
	dzaOf := func(t *term, dy *Node, in []*Node) *Node {
		if t.dza == nil {
			t.dza = MulScalar(DotGeneral(dy, []int{1}, nil, in[t.bIdx], []int{0}, nil), t.scale) // [N, R]
		}
		return t.dza
	}
	grads := make([]func(dys, in []*Node) *Node, len(xs))
	grads[0] = func(dys, in []*Node) *Node {
		var dx *Node
		add := func(v *Node) {
			if dx == nil {
				dx = v
			} else {
				dx = Add(dx, v)
			}
		}
		for i, t := range ts {
			if dys[i] == nil {
				continue
			}
			add(DotGeneral(dys[i], []int{1}, nil, weightOf(t, in), []int{0}, nil)) // [N, in]
			if t.aIdx >= 0 {
				dxd := DotGeneral(dzaOf(t, dys[i], in), []int{1}, nil, in[t.aIdx], []int{0}, nil) // [N, in]
				if t.mask != nil {
					dxd = Where(t.mask, dxd, ZerosLike(dxd))
				}
				add(dxd)
			}
		}
		if dx == nil {
			return ZerosLike(in[0])
		}
		return dx
	}
	for i, t := range ts {
		dyOr := func(dys []*Node, of *Node, f func(dy *Node) *Node) *Node {
			if dys[i] == nil {
				return ZerosLike(of)
			}
			return f(dys[i])
		}
		if t.wIdx >= 0 {
			grads[t.wIdx] = func(dys, in []*Node) *Node {
				return dyOr(dys, in[t.wIdx], func(dy *Node) *Node { return weightGradient(dy, in[0]) })
			}
		}
		if t.aIdx >= 0 {
			grads[t.aIdx] = func(dys, in []*Node) *Node {
				return dyOr(dys, in[t.aIdx], func(dy *Node) *Node { return weightGradient(dzaOf(t, dy, in), t.xd) })
			}
			grads[t.bIdx] = func(dys, in []*Node) *Node {
				return dyOr(dys, in[t.bIdx], func(dy *Node) *Node { return weightGradient(dy, t.za) })
			}
		}
	}
	return gradientsViaN(xs, forward, grads...)
}

// weightGradient is the gradient dyᵀ·x [out, in] of a weight w [out, in] in y = x·wᵀ, from
// dy [N, out] and x [N, in]. It contracts the leading N axis of both factors; as GoMLX
// derives it, its Go backend transposes both. Here only the narrower one is transposed: dyᵀ·x
// when out ≤ in (LoRA's A, whose out is the rank), else (xᵀ·dy)ᵀ (LoRA's B; the gate and up
// projections and the output head when the base trains), whose [in, out] result is
// transposed back at weight size.
func weightGradient(dy, x *Node) *Node {
	out, in := dy.Shape().Dimensions[1], x.Shape().Dimensions[1]
	if out <= in {
		return DotGeneral(TransposeAllAxes(dy, 1, 0), []int{1}, nil, x, []int{0}, nil) // [out, in]
	}
	dwt := DotGeneral(TransposeAllAxes(x, 1, 0), []int{1}, nil, dy, []int{0}, nil) // [in, out]
	return TransposeAllAxes(dwt, 1, 0)                                             // [out, in]
}

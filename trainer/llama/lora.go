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
		errs = append(errs, fmt.Errorf("lora r (%d) must be > 0", c.Rank))
	}
	if !(c.Alpha > 0) {
		errs = append(errs, fmt.Errorf("lora_alpha (%g) must be > 0", c.Alpha))
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		errs = append(errs, fmt.Errorf("lora_dropout (%g) must be in [0, 1)", c.Dropout))
	}
	if len(c.TargetModules) == 0 {
		errs = append(errs, errors.New("lora target_modules is empty"))
	}
	for _, t := range c.TargetModules {
		if _, ok := projections[t]; !ok {
			errs = append(errs, fmt.Errorf("lora target module %q is not a Llama projection (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", t))
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
	if narrow {
		return ConvertDType(v.NodeValue(g), m.DType)
	}
	return v.NodeValue(g)
}

// Linear is a bias-free projection y = x·Wᵀ with W = scope/weight [out, in], plus the LoRA
// update when the model's adapter targets projection and adapter is on:
//
//	y += (α/R) · dropout(x)·Aᵀ·Bᵀ,  A = scope/lora_A/weight [R, in], B = scope/lora_B/weight [out, R].
//
// x is [..., in]; the result is [..., out]. Dropout applies only in training graphs (see
// [Model.WithDropoutMasks] for where it is drawn).
func (m *Model) Linear(scope *model.Scope, projection string, x *Node, out int, adapter Adapter) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	in := dims[len(dims)-1]
	outDims := append(slices.Clone(dims[:len(dims)-1]), out)
	// The products run on x flattened to [N, in]: the weight gradients (of the LoRA factors,
	// and of W when the base trains) then contract the leading axis of a 2-D tensor, which
	// GoMLX's Go backend transposes with its fast 2-D kernel rather than element by element.
	x2 := Reshape(x, -1, in)                                // [N, in]
	w := m.weight(g, scope, "weight", m.TrainBase, out, in) // [out, in]
	y := rowsTimesWeightT(x2, w, m.TrainBase)               // [N, out]
	if !bool(adapter) || m.LoRA == nil || !m.LoRA.Targets(projection) {
		return Reshape(y, outDims...)
	}
	r := m.LoRA.Rank
	a := m.weight(g, scope.At("lora_A"), "weight", true, r, in)  // [R, in]
	b := m.weight(g, scope.At("lora_B"), "weight", true, out, r) // [out, R]
	xd, scale := m.dropout(scope, HFName(scope.Scope()), x2)     // [N, in]; x2 unless training
	// The factor goes on the rank-wide za rather than on the out-wide update: one pass over
	// [N, R] instead of [N, out], forward and backward.
	za := MulScalar(rowsTimesWeightT(xd, a, true), scale) // [N, R]
	zb := rowsTimesWeightT(za, b, true)                   // [N, out]
	return Reshape(Add(y, zb), outDims...)
}

// rowsTimesWeightT is x·wᵀ for rows x [N, in] and a weight w [out, in]: [N, out]. The weight's
// gradient Σₙ dy[n]ᵀ·x[n] contracts the leading N axis of both factors; as GoMLX derives it, the
// Go backend then transposes both dy [N, out] and x [N, in]. Here only the narrower one is
// transposed, explicitly (see [gradientVia]): dyᵀ·x when out ≤ in (LoRA's A, whose out is the
// rank), else (xᵀ·dy)ᵀ (LoRA's B; the gate and up projections and the tied head when the base
// trains), whose [in, out] result is transposed back at weight size. A frozen w (trainable
// false) is used as it is: it has no gradient, and the identity gradientVia puts on w would
// make the Go backend copy the whole weight in every pass (a variable's buffer is never the
// backend's to hand on).
func rowsTimesWeightT(x, w *Node, trainable bool) *Node {
	in, out := w.Shape().Dimensions[1], w.Shape().Dimensions[0]
	product := func(w *Node) *Node { return DotGeneral(x, []int{1}, nil, w, []int{1}, nil) } // [N, out]
	if !trainable {
		return product(w)
	}
	return gradientVia(w, product, func(dy *Node) *Node {
		if out <= in {
			return DotGeneral(TransposeAllAxes(dy, 1, 0), []int{1}, nil, x, []int{0}, nil) // [out, in]
		}
		dwt := DotGeneral(TransposeAllAxes(x, 1, 0), []int{1}, nil, dy, []int{0}, nil) // [in, out]
		return TransposeAllAxes(dwt, 1, 0)                                             // [out, in]
	})
}

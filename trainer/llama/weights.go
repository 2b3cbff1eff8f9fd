package llama

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
)

// Weight is one host tensor in row-major order, as a checkpoint reader hands it over.
// A safetensors.Tensor converts with Shape and Float32s().
type Weight struct {
	Shape []int
	Data  []float32
}

// WeightSpec names one Hugging Face tensor and its shape.
type WeightSpec struct {
	Name  string
	Shape []int
}

// ExpectedWeights lists every base-model tensor of cfg with its Hugging Face name and shape: the
// one map from checkpoint names to variables. lm_head.weight is absent when the embeddings are
// tied.
func ExpectedWeights(cfg llamacfg.Config) []WeightSpec {
	h, i, v := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	q, kv := cfg.NumAttentionHeads*cfg.HeadDimension(), cfg.NumKeyValueHeads*cfg.HeadDimension()
	specs := []WeightSpec{{"model.embed_tokens.weight", []int{v, h}}}
	for l := range cfg.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		specs = append(specs,
			WeightSpec{p + "input_layernorm.weight", []int{h}},
			WeightSpec{p + "self_attn.q_proj.weight", []int{q, h}},
			WeightSpec{p + "self_attn.k_proj.weight", []int{kv, h}},
			WeightSpec{p + "self_attn.v_proj.weight", []int{kv, h}},
			WeightSpec{p + "self_attn.o_proj.weight", []int{h, q}},
			WeightSpec{p + "post_attention_layernorm.weight", []int{h}},
			WeightSpec{p + "mlp.gate_proj.weight", []int{i, h}},
			WeightSpec{p + "mlp.up_proj.weight", []int{i, h}},
			WeightSpec{p + "mlp.down_proj.weight", []int{h, i}},
		)
	}
	specs = append(specs, WeightSpec{"model.norm.weight", []int{h}})
	if !cfg.TieWordEmbeddings {
		specs = append(specs, WeightSpec{"lm_head.weight", []int{v, h}})
	}
	return specs
}

// LoadWeights creates (or overwrites) the base-model variables of cfg in store from weights,
// converted to dtype and frozen. Tensors the model does not use (lm_head.weight of a tied
// model, rotary_emb.inv_freq of old checkpoints) are ignored. The error lists every missing
// tensor and every shape mismatch.
func LoadWeights(store *model.Store, cfg llamacfg.Config, dtype dtypes.DType, weights map[string]Weight) error {
	var errs []error
	specs := ExpectedWeights(cfg)
	for _, s := range specs {
		w, ok := weights[s.Name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("missing weight %s %v", s.Name, s.Shape))
		case !slices.Equal(w.Shape, s.Shape):
			errs = append(errs, fmt.Errorf("weight %s has shape %v, want %v", s.Name, w.Shape, s.Shape))
		case len(w.Data) != product(s.Shape):
			errs = append(errs, fmt.Errorf("weight %s has %d values, want %d", s.Name, len(w.Data), product(s.Shape)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("llama: load weights: %w", err)
	}
	for _, s := range specs {
		if err := setVariable(store, s.Name, dtype, weights[s.Name], false); err != nil {
			return err
		}
	}
	return nil
}

// InitWeights fills the base model of cfg with deterministic random weights (seeded): normal
// with standard deviation 0.02 for matrices, as transformers' initializer_range, and ones for
// the RMSNorm weights. For tests and for training a tiny model from scratch.
func InitWeights(store *model.Store, cfg llamacfg.Config, dtype dtypes.DType, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x11a3a))
	weights := map[string]Weight{}
	for _, s := range ExpectedWeights(cfg) {
		w := Weight{Shape: s.Shape, Data: make([]float32, product(s.Shape))}
		for j := range w.Data {
			if len(s.Shape) == 1 {
				w.Data[j] = 1
			} else {
				w.Data[j] = float32(0.02 * rng.NormFloat64())
			}
		}
		weights[s.Name] = w
	}
	return LoadWeights(store, cfg, dtype, weights)
}

// ReadWeights copies the named variables (Hugging Face names) out of store as float32 host
// tensors, e.g. the LoRA factors listed by [LoRAWeightSpecs] for a PEFT export.
func ReadWeights(store *model.Store, names []string) (map[string]Weight, error) {
	out := make(map[string]Weight, len(names))
	for _, name := range names {
		v := store.GetVariable(VariablePath(name))
		if v == nil {
			return nil, fmt.Errorf("llama: read weights: no variable %s", name)
		}
		t, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("llama: read weight %s: %w", name, err)
		}
		w := Weight{Shape: slices.Clone(t.Shape().Dimensions), Data: make([]float32, t.Size())}
		switch t.DType() {
		case dtypes.Float32:
			tensors.MustConstFlatData(t, func(flat []float32) { copy(w.Data, flat) })
		case dtypes.Float64:
			tensors.MustConstFlatData(t, func(flat []float64) {
				for j, x := range flat {
					w.Data[j] = float32(x)
				}
			})
		default:
			return nil, fmt.Errorf("llama: read weight %s: dtype %s not supported", name, t.DType())
		}
		out[name] = w
	}
	return out, nil
}

// setVariable stores w under the variable path of name as dtype, replacing any previous value.
func setVariable(store *model.Store, name string, dtype dtypes.DType, w Weight, trainable bool) error {
	var t *tensors.Tensor
	switch dtype {
	case dtypes.Float32:
		t = tensors.FromFlatDataAndDimensions(slices.Clone(w.Data), w.Shape...)
	case dtypes.Float64:
		d := make([]float64, len(w.Data))
		for j, x := range w.Data {
			d[j] = float64(x)
		}
		t = tensors.FromFlatDataAndDimensions(d, w.Shape...)
	default:
		return fmt.Errorf("llama: weight %s: dtype %s not supported", name, dtype)
	}
	path := VariablePath(name)
	if v := store.GetVariable(path); v != nil {
		if !v.Shape().Equal(t.Shape()) {
			return fmt.Errorf("llama: weight %s: store holds %s, got %s", name, v.Shape(), t.Shape())
		}
		if err := v.SetValue(t); err != nil {
			return fmt.Errorf("llama: weight %s: %w", name, err)
		}
		v.Trainable = trainable
		return nil
	}
	v, err := store.CreateVariable(path, t)
	if err != nil {
		return fmt.Errorf("llama: weight %s: %w", name, err)
	}
	v.Trainable = trainable
	return nil
}

func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// kaimingUniformBound is PEFT's bound for lora_A: kaiming_uniform_(a=√5) on [R, in] draws from
// U(−b, b) with b = gain·√(3/fan_in), gain = √(2/(1+a²)) = √(1/3), so b = 1/√in.
func kaimingUniformBound(fanIn int) float64 { return 1 / math.Sqrt(float64(fanIn)) }

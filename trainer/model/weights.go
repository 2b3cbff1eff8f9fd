package model

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// TensorSpec is one tensor of a LlamaForCausalLM checkpoint: its Hugging Face name and
// shape. Linear weights are stored as nn.Linear does, [out_features, in_features].
type TensorSpec struct {
	Name  string
	Shape []int
}

// Names of the tensors outside the decoder layers.
const (
	EmbedTokensName = "model.embed_tokens.weight" // [vocab, hidden]
	FinalNormName   = "model.norm.weight"         // [hidden]
	LMHeadName      = "lm_head.weight"            // [vocab, hidden]; absent when tie_word_embeddings
)

// LayerPrefix returns the name prefix of decoder layer i, "model.layers.{i}.".
func LayerPrefix(i int) string { return fmt.Sprintf("model.layers.%d.", i) }

// TensorSpecs lists every tensor a Hugging Face LlamaForCausalLM checkpoint for c holds, in
// the order of its state_dict:
//
//	model.embed_tokens.weight                      [vocab, hidden]
//	per layer i, prefix model.layers.{i}.:
//	  input_layernorm.weight                       [hidden]
//	  self_attn.q_proj.weight                      [heads·head_dim, hidden]
//	  self_attn.k_proj.weight, v_proj.weight       [kv_heads·head_dim, hidden]
//	  self_attn.o_proj.weight                      [hidden, heads·head_dim]
//	  post_attention_layernorm.weight              [hidden]
//	  mlp.gate_proj.weight, mlp.up_proj.weight     [intermediate, hidden]
//	  mlp.down_proj.weight                         [hidden, intermediate]
//	model.norm.weight                              [hidden]
//	lm_head.weight                                 [vocab, hidden], only if !tie_word_embeddings
//
// Llama has no biases (attention_bias and mlp_bias are false in every released config).
func TensorSpecs(c Config) []TensorSpec {
	h, v, inter := c.HiddenSize, c.VocabSize, c.IntermediateSize
	q := c.NumAttentionHeads * c.HeadDimension()
	kv := c.NumKeyValueHeads * c.HeadDimension()
	specs := make([]TensorSpec, 0, 2+9*c.NumHiddenLayers+1)
	specs = append(specs, TensorSpec{EmbedTokensName, []int{v, h}})
	for i := range c.NumHiddenLayers {
		p := LayerPrefix(i)
		specs = append(specs,
			TensorSpec{p + "input_layernorm.weight", []int{h}},
			TensorSpec{p + "self_attn.q_proj.weight", []int{q, h}},
			TensorSpec{p + "self_attn.k_proj.weight", []int{kv, h}},
			TensorSpec{p + "self_attn.v_proj.weight", []int{kv, h}},
			TensorSpec{p + "self_attn.o_proj.weight", []int{h, q}},
			TensorSpec{p + "post_attention_layernorm.weight", []int{h}},
			TensorSpec{p + "mlp.gate_proj.weight", []int{inter, h}},
			TensorSpec{p + "mlp.up_proj.weight", []int{inter, h}},
			TensorSpec{p + "mlp.down_proj.weight", []int{h, inter}},
		)
	}
	specs = append(specs, TensorSpec{FinalNormName, []int{h}})
	if !c.TieWordEmbeddings {
		specs = append(specs, TensorSpec{LMHeadName, []int{v, h}})
	}
	return specs
}

// NumParameters returns the number of parameters of the model c describes (tied embeddings
// counted once, as transformers' num_parameters does).
func NumParameters(c Config) int64 {
	var n int64
	for _, s := range TensorSpecs(c) {
		p := int64(1)
		for _, d := range s.Shape {
			p *= int64(d)
		}
		n += p
	}
	return n
}

// ignoredTensor reports checkpoint entries that are buffers, not weights: old transformers
// versions saved each layer's rotary embedding table as
// model.layers.{i}.self_attn.rotary_emb.inv_freq. It is recomputed from rope_theta and
// rope_scaling, so its presence or absence is not a mismatch.
func ignoredTensor(name string) bool {
	return strings.HasSuffix(name, "rotary_emb.inv_freq")
}

// WeightsMismatchError lists every way a checkpoint differs from what its config.json
// describes. Each list is sorted.
type WeightsMismatchError struct {
	Missing    []string // expected tensors the checkpoint lacks
	Unexpected []string // checkpoint tensors the config does not explain
	WrongShape []string // "NAME is [got], want [want]"
}

func (e *WeightsMismatchError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("missing: %v", e.Missing))
	}
	if len(e.Unexpected) > 0 {
		parts = append(parts, fmt.Sprintf("unexpected: %v", e.Unexpected))
	}
	if len(e.WrongShape) > 0 {
		parts = append(parts, "wrong shape: "+strings.Join(e.WrongShape, ", "))
	}
	return "model weights do not match config.json: " + strings.Join(parts, "; ")
}

// CheckTensors checks that f holds exactly the tensors TensorSpecs(c) lists, with those
// shapes, and returns one *WeightsMismatchError naming every missing, unexpected and
// mis-shaped tensor, so a wrong checkpoint is diagnosed in one run. rotary_emb.inv_freq
// buffers are ignored (see ignoredTensor). An invalid config is reported as such.
func CheckTensors(c Config, f *safetensors.File) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	var e WeightsMismatchError
	want := map[string]bool{}
	for _, s := range TensorSpecs(c) {
		want[s.Name] = true
		t, ok := f.Tensors[s.Name]
		if !ok {
			e.Missing = append(e.Missing, s.Name)
			continue
		}
		if !slices.Equal(t.Shape, s.Shape) {
			e.WrongShape = append(e.WrongShape, fmt.Sprintf("%s is %v, want %v", s.Name, t.Shape, s.Shape))
		}
	}
	for name := range f.Tensors {
		if want[name] || ignoredTensor(name) {
			continue
		}
		if name == LMHeadName && c.TieWordEmbeddings {
			name += " (tie_word_embeddings is true)"
		}
		e.Unexpected = append(e.Unexpected, name)
	}
	if len(e.Missing)+len(e.Unexpected)+len(e.WrongShape) == 0 {
		return nil
	}
	slices.Sort(e.Missing)
	slices.Sort(e.Unexpected)
	slices.Sort(e.WrongShape)
	return &e
}

// LoadModelDir loads a Hugging Face Llama model directory: config.json (LoadConfig, which
// validates it), the weights (safetensors.ReadModelDir: model.safetensors or a sharded
// index) and CheckTensors between the two.
//
// Hook for the tokenizer: the vocabulary check (every id of tokenizer.json, special tokens
// included, is < vocab_size, and the bos/eos ids in config.json exist) needs the tokenizer
// package and belongs to its loader, which calls LoadModelDir and then checks the returned
// Config against the tokenizer. This package stays free of tokenizer code.
func LoadModelDir(dir string) (Config, *safetensors.File, error) {
	c, err := LoadConfig(dir)
	if err != nil {
		return Config{}, nil, err
	}
	f, err := safetensors.ReadModelDir(dir)
	if err != nil {
		return Config{}, nil, fmt.Errorf("model weights in %s: %w", dir, err)
	}
	if err := CheckTensors(c, f); err != nil {
		return Config{}, nil, fmt.Errorf("%s: %w", dir, err)
	}
	return c, f, nil
}

// WriteModelDir writes a Hugging Face model directory loadable by LoadModelDir and by
// transformers' LlamaForCausalLM.from_pretrained: model.safetensors (metadata
// {"format": "pt"}, which transformers expects) and config.json. The tensors are checked
// with CheckTensors first, so a mismatched model is never written. config.json is written
// last: a directory with a config always has its weights. If c.TorchDType is empty it is
// set from the tensors' dtype ("bfloat16", "float16" or "float32") so that
// torch_dtype="auto" loads them as stored.
func WriteModelDir(dir string, c Config, tensors []safetensors.Tensor) error {
	f := &safetensors.File{Tensors: make(map[string]safetensors.Tensor, len(tensors))}
	for _, t := range tensors {
		if _, dup := f.Tensors[t.Name]; dup {
			return fmt.Errorf("write model %s: duplicate tensor %q", dir, t.Name)
		}
		f.Tensors[t.Name] = t
	}
	if err := CheckTensors(c, f); err != nil {
		return fmt.Errorf("write model %s: %w", dir, err)
	}
	if c.TorchDType == "" && len(tensors) > 0 {
		c.TorchDType = torchDType(tensors[0].DType)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	path := filepath.Join(dir, safetensors.SingleFileName)
	if err := safetensors.WriteFile(path, tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("write model %s: %w", dir, err)
	}
	if err := WriteConfig(dir, c); err != nil {
		return fmt.Errorf("write model %s: %w", dir, err)
	}
	return nil
}

// torchDType maps a safetensors dtype to config.json's torch_dtype spelling.
func torchDType(d safetensors.DType) string {
	switch d {
	case safetensors.BF16:
		return "bfloat16"
	case safetensors.F16:
		return "float16"
	case safetensors.F32:
		return "float32"
	}
	return ""
}

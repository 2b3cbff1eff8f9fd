package model

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestConfigValidateMessages(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string
	}{
		{"heads do not divide hidden", func(c *Config) { c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads = 10, 3, 1 },
			[]string{"hidden_size (10) must be divisible by num_attention_heads (3)"}},
		{"kv heads do not divide heads", func(c *Config) { c.NumKeyValueHeads = 3 },
			[]string{"num_attention_heads (4) must be divisible by num_key_value_heads (3)"}},
		{"several at once", func(c *Config) { c.NumHiddenLayers, c.VocabSize, c.RMSNormEps = 0, -1, 0 },
			[]string{"num_hidden_layers (0) must be > 0", "vocab_size (-1) must be > 0", "rms_norm_eps (0) must be > 0"}},
		{"odd head dim", func(c *Config) { c.HeadDim = 5 },
			[]string{"head dimension (5) must be even for rotary embeddings"}},
		{"model type", func(c *Config) { c.ModelType = "mistral" },
			[]string{`model_type "mistral" is not supported; only llama`}},
		{"rope type", func(c *Config) { c.RopeScaling = &RopeScaling{RopeType: "yarn"} },
			[]string{`rope_scaling.rope_type "yarn" is not supported`}},
		{"llama3 rope factors", func(c *Config) {
			c.RopeScaling = &RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1, OriginalMaxPositionEmbeddings: 8192}
		}, []string{"rope_scaling (llama3) needs"}},
	}
	if err := tinyConfig(true).Validate(); err != nil {
		t.Fatalf("tinyConfig().Validate() = %v, want nil", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tinyConfig(true)
			tt.modify(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// llama32_3B is config.json of meta-llama/Llama-3.2-3B-Instruct as published (eos_token_id
// is a list there), written out here because tests never reach the hub.
const llama32_3B = `{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 3072,
  "initializer_range": 0.02,
  "intermediate_size": 8192,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 24,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 32.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
}
`

func TestLoadConfigLlama32_3B(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(llama32_3B), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	bos := 128000
	want := Config{
		Architectures:         []string{"LlamaForCausalLM"},
		ModelType:             "llama",
		HiddenSize:            3072,
		NumHiddenLayers:       28,
		NumAttentionHeads:     24,
		NumKeyValueHeads:      8,
		HeadDim:               128,
		IntermediateSize:      8192,
		VocabSize:             128256,
		RMSNormEps:            1e-5,
		RopeTheta:             500000,
		RopeScaling:           &RopeScaling{RopeType: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192},
		TieWordEmbeddings:     true,
		MaxPositionEmbeddings: 131072,
		BOSTokenID:            &bos,
		EOSTokenID:            []any{128001.0, 128008.0, 128009.0},
		TorchDType:            "bfloat16",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("LoadConfig =\n%+v\nwant\n%+v", c, want)
	}
	if got := c.HeadDimension(); got != 128 {
		t.Errorf("HeadDimension() = %d, want 128", got)
	}

	specs := TensorSpecs(c)
	if len(specs) != 1+28*9+1 { // tied: no lm_head.weight
		t.Errorf("%d tensor specs, want %d", len(specs), 1+28*9+1)
	}
	// 3,212,749,824 = embed 128256·3072 + 28 layers × (q 3072² + k,v 2·1024·3072 +
	// o 3072² + gate,up,down 3·8192·3072 + 2 norms·3072) + final norm 3072; the "3.21B" of
	// the model card.
	if got := NumParameters(c); got != 3_212_749_824 {
		t.Errorf("NumParameters = %d, want 3212749824", got)
	}
	for _, s := range specs {
		if s.Name == "model.layers.27.self_attn.k_proj.weight" && !reflect.DeepEqual(s.Shape, []int{1024, 3072}) {
			t.Errorf("k_proj shape = %v, want [1024 3072]", s.Shape)
		}
	}
}

// Package model describes a Llama-architecture checkpoint in the Hugging Face layout:
// config.json (Config), model.safetensors or a sharded model.safetensors.index.json, and
// tokenizer.json. It knows the Hugging Face tensor names and shapes verbatim, so a model
// directory written by transformers loads here and one written here loads in transformers.
package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// RopeScaling is config.json's rope_scaling. Only rope_type "llama3" (Llama 3.1/3.2) is
// supported besides none.
type RopeScaling struct {
	RopeType                      string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
}

// Config is the subset of a Llama config.json the model needs, with Hugging Face names.
type Config struct {
	Architectures         []string     `json:"architectures,omitempty"`
	ModelType             string       `json:"model_type"`
	HiddenSize            int          `json:"hidden_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDim               int          `json:"head_dim,omitempty"` // default hidden_size / num_attention_heads
	IntermediateSize      int          `json:"intermediate_size"`
	VocabSize             int          `json:"vocab_size"`
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling,omitempty"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	BOSTokenID            *int         `json:"bos_token_id,omitempty"`
	EOSTokenID            any          `json:"eos_token_id,omitempty"` // int or []int in HF configs
	TorchDType            string       `json:"torch_dtype,omitempty"`
}

// HeadDimension returns head_dim, defaulting to hidden_size / num_attention_heads.
func (c Config) HeadDimension() int {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	if c.NumAttentionHeads == 0 {
		return 0
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// Validate checks the config describes a Llama model this package can build, with
// messages that say which field to fix.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s (%d) must be > 0", name, v))
		}
	}
	pos("hidden_size", c.HiddenSize)
	pos("num_hidden_layers", c.NumHiddenLayers)
	pos("num_attention_heads", c.NumAttentionHeads)
	pos("num_key_value_heads", c.NumKeyValueHeads)
	pos("intermediate_size", c.IntermediateSize)
	pos("vocab_size", c.VocabSize)
	pos("max_position_embeddings", c.MaxPositionEmbeddings)
	if c.ModelType != "" && c.ModelType != "llama" {
		errs = append(errs, fmt.Errorf("model_type %q is not supported; only llama", c.ModelType))
	}
	if c.NumAttentionHeads > 0 && c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		errs = append(errs, fmt.Errorf("hidden_size (%d) must be divisible by num_attention_heads (%d)", c.HiddenSize, c.NumAttentionHeads))
	}
	if c.NumKeyValueHeads > 0 && c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		errs = append(errs, fmt.Errorf("num_attention_heads (%d) must be divisible by num_key_value_heads (%d)", c.NumAttentionHeads, c.NumKeyValueHeads))
	}
	if hd := c.HeadDimension(); hd%2 != 0 {
		errs = append(errs, fmt.Errorf("head dimension (%d) must be even for rotary embeddings", hd))
	}
	if !(c.RMSNormEps > 0) {
		errs = append(errs, fmt.Errorf("rms_norm_eps (%g) must be > 0", c.RMSNormEps))
	}
	if !(c.RopeTheta > 0) {
		errs = append(errs, fmt.Errorf("rope_theta (%g) must be > 0", c.RopeTheta))
	}
	if rs := c.RopeScaling; rs != nil && rs.RopeType != "" && rs.RopeType != "default" {
		if rs.RopeType != "llama3" {
			errs = append(errs, fmt.Errorf("rope_scaling.rope_type %q is not supported; use llama3 or none", rs.RopeType))
		} else if rs.Factor <= 0 || rs.LowFreqFactor <= 0 || rs.HighFreqFactor <= rs.LowFreqFactor || rs.OriginalMaxPositionEmbeddings <= 0 {
			errs = append(errs, fmt.Errorf("rope_scaling (llama3) needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0; got %+v", *rs))
		}
	}
	return errors.Join(errs...)
}

// ConfigFileName is a Hugging Face model directory's config file.
const ConfigFileName = "config.json"

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (Config, error) {
	p := filepath.Join(dir, ConfigFileName)
	b, err := os.ReadFile(p)
	if err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", p, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", p, err)
	}
	return c, nil
}

// WriteConfig writes c as dir/config.json in the Hugging Face format.
func WriteConfig(dir string, c Config) error {
	if c.ModelType == "" {
		c.ModelType = "llama"
	}
	if len(c.Architectures) == 0 {
		c.Architectures = []string{"LlamaForCausalLM"}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ConfigFileName), append(b, '\n'), 0o644)
}

package model

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// tinyConfig is a valid two-layer Llama with grouped-query attention (4 heads, 2 KV heads,
// head_dim 4) small enough to write and read in milliseconds.
func tinyConfig(tied bool) Config {
	return Config{
		ModelType:             "llama",
		HiddenSize:            16,
		NumHiddenLayers:       2,
		NumAttentionHeads:     4,
		NumKeyValueHeads:      2,
		IntermediateSize:      32,
		VocabSize:             64,
		RMSNormEps:            1e-5,
		RopeTheta:             10000,
		TieWordEmbeddings:     tied,
		MaxPositionEmbeddings: 128,
	}
}

func TestTensorSpecs(t *testing.T) {
	for _, tied := range []bool{true, false} {
		c := tinyConfig(tied)
		specs := TensorSpecs(c)
		wantN := 1 + 9*2 + 1
		if !tied {
			wantN++
		}
		if len(specs) != wantN {
			t.Errorf("tied=%v: %d specs, want %d", tied, len(specs), wantN)
		}
		got := map[string][]int{}
		for _, s := range specs {
			if _, dup := got[s.Name]; dup {
				t.Errorf("duplicate spec %s", s.Name)
			}
			got[s.Name] = s.Shape
		}
		want := map[string][]int{
			"model.embed_tokens.weight":                      {64, 16},
			"model.layers.1.input_layernorm.weight":          {16},
			"model.layers.1.self_attn.q_proj.weight":         {16, 16},
			"model.layers.1.self_attn.k_proj.weight":         {8, 16},
			"model.layers.1.self_attn.v_proj.weight":         {8, 16},
			"model.layers.1.self_attn.o_proj.weight":         {16, 16},
			"model.layers.1.post_attention_layernorm.weight": {16},
			"model.layers.1.mlp.gate_proj.weight":            {32, 16},
			"model.layers.1.mlp.up_proj.weight":              {32, 16},
			"model.layers.1.mlp.down_proj.weight":            {16, 32},
			"model.layers.0.mlp.down_proj.weight":            {16, 32},
			"model.norm.weight":                              {16},
		}
		for name, shape := range want {
			if !reflect.DeepEqual(got[name], shape) {
				t.Errorf("tied=%v: %s shape = %v, want %v", tied, name, got[name], shape)
			}
		}
		lm, hasLM := got["lm_head.weight"]
		if hasLM == tied {
			t.Errorf("tied=%v: lm_head.weight present = %v", tied, hasLM)
		}
		if !tied && !reflect.DeepEqual(lm, []int{64, 16}) {
			t.Errorf("lm_head.weight shape = %v, want [64 16]", lm)
		}
		if specs[0].Name != "model.embed_tokens.weight" || specs[1].Name != "model.layers.0.input_layernorm.weight" {
			t.Errorf("specs not in state_dict order: %v, %v", specs[0].Name, specs[1].Name)
		}
	}
}

func TestTensorSpecsExplicitHeadDim(t *testing.T) {
	c := tinyConfig(true)
	c.HeadDim = 8 // heads·head_dim (32) != hidden (16), as in some Llama-architecture models
	got := map[string][]int{}
	for _, s := range TensorSpecs(c) {
		got[s.Name] = s.Shape
	}
	for name, want := range map[string][]int{
		"model.layers.0.self_attn.q_proj.weight": {32, 16},
		"model.layers.0.self_attn.k_proj.weight": {16, 16},
		"model.layers.0.self_attn.o_proj.weight": {16, 32},
	} {
		if !reflect.DeepEqual(got[name], want) {
			t.Errorf("%s shape = %v, want %v", name, got[name], want)
		}
	}
}

func TestCheckTensorsListsEveryProblem(t *testing.T) {
	c := tinyConfig(true)
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{}}
	for _, tn := range InitRandom(c, 1, safetensors.F32) {
		f.Tensors[tn.Name] = tn
	}
	if err := CheckTensors(c, f); err != nil {
		t.Fatalf("CheckTensors(fresh init) = %v", err)
	}
	// Buffers some checkpoints carry are not a mismatch.
	f.Tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = safetensors.Tensor{Name: "x", DType: safetensors.F32, Shape: []int{2}, Data: make([]byte, 8)}
	if err := CheckTensors(c, f); err != nil {
		t.Fatalf("CheckTensors with inv_freq = %v", err)
	}

	delete(f.Tensors, "model.norm.weight")
	delete(f.Tensors, "model.layers.1.mlp.gate_proj.weight")
	f.Tensors["model.layers.2.mlp.up_proj.weight"] = safetensors.Tensor{Shape: []int{32, 16}}
	f.Tensors["lm_head.weight"] = safetensors.Tensor{Shape: []int{64, 16}}
	f.Tensors["model.layers.0.mlp.up_proj.weight"] = safetensors.Tensor{Shape: []int{8, 16}}
	f.Tensors["model.embed_tokens.weight"] = safetensors.Tensor{Shape: []int{16, 64}}

	err := CheckTensors(c, f)
	var me *WeightsMismatchError
	if !errors.As(err, &me) {
		t.Fatalf("CheckTensors error = %v (%T), want *WeightsMismatchError", err, err)
	}
	want := "model weights do not match config.json: " +
		"missing: [model.layers.1.mlp.gate_proj.weight model.norm.weight]; " +
		"unexpected: [lm_head.weight (tie_word_embeddings is true) model.layers.2.mlp.up_proj.weight]; " +
		"wrong shape: model.embed_tokens.weight is [16 64], want [64 16], " +
		"model.layers.0.mlp.up_proj.weight is [8 16], want [32 16]"
	if err.Error() != want {
		t.Errorf("CheckTensors error =\n%s\nwant\n%s", err, want)
	}
}

func TestCheckTensorsInvalidConfig(t *testing.T) {
	c := tinyConfig(true)
	c.NumKeyValueHeads = 3
	err := CheckTensors(c, &safetensors.File{})
	if err == nil || !strings.Contains(err.Error(), "num_attention_heads (4) must be divisible by num_key_value_heads (3)") {
		t.Errorf("CheckTensors error = %v, want the config problem", err)
	}
}

func TestWriteLoadModelDirRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		tied  bool
		dtype safetensors.DType
	}{{true, safetensors.BF16}, {false, safetensors.F32}, {false, safetensors.F16}} {
		t.Run(string(tc.dtype), func(t *testing.T) {
			c := tinyConfig(tc.tied)
			tensors := InitRandom(c, 42, tc.dtype)
			dir := filepath.Join(t.TempDir(), "sft")
			if err := WriteModelDir(dir, c, tensors); err != nil {
				t.Fatal(err)
			}
			got, f, err := LoadModelDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := c
			want.Architectures = []string{"LlamaForCausalLM"}
			want.TorchDType = map[safetensors.DType]string{safetensors.BF16: "bfloat16", safetensors.F32: "float32", safetensors.F16: "float16"}[tc.dtype]
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config = %+v, want %+v", got, want)
			}
			if f.Metadata["format"] != "pt" {
				t.Errorf("metadata = %v, want format=pt", f.Metadata)
			}
			if len(f.Tensors) != len(tensors) {
				t.Errorf("%d tensors, want %d", len(f.Tensors), len(tensors))
			}
			for _, w := range tensors {
				g := f.Tensors[w.Name]
				if g.DType != w.DType || !reflect.DeepEqual(g.Shape, w.Shape) || string(g.Data) != string(w.Data) {
					t.Errorf("%s differs after the round trip", w.Name)
				}
			}
		})
	}
}

func TestWriteModelDirRejectsMismatch(t *testing.T) {
	c := tinyConfig(true)
	tensors := InitRandom(c, 1, safetensors.F32)
	dir := filepath.Join(t.TempDir(), "m")
	err := WriteModelDir(dir, c, tensors[1:])
	if err == nil || !strings.Contains(err.Error(), "missing: [model.embed_tokens.weight]") {
		t.Errorf("WriteModelDir error = %v, want the missing embedding", err)
	}
	if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
		t.Errorf("WriteModelDir created %s despite the error", dir)
	}
	if err := WriteModelDir(dir, c, append(tensors, tensors[0])); err == nil || !strings.Contains(err.Error(), "duplicate tensor") {
		t.Errorf("WriteModelDir with a duplicate: err = %v", err)
	}
}

func TestLoadModelDirMismatch(t *testing.T) {
	c := tinyConfig(true)
	dir := t.TempDir()
	if err := WriteModelDir(dir, c, InitRandom(c, 1, safetensors.BF16)); err != nil {
		t.Fatal(err)
	}
	// The same weights under a config that says there are three layers.
	c.NumHiddenLayers = 3
	if err := WriteConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadModelDir(dir)
	var me *WeightsMismatchError
	if !errors.As(err, &me) || len(me.Missing) != 9 || len(me.Unexpected) != 0 {
		t.Errorf("LoadModelDir error = %v, want the 9 tensors of layer 2 missing", err)
	}
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("error %v does not name the directory", err)
	}
}

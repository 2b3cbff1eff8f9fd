package peft

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// goldenConfig is adapter_config.json for NewConfig(8, 16, 0.05, q,k,v,o) on
// meta-llama/Llama-3.2-1B-Instruct. Its keys, key order, defaults and layout are those PEFT
// 0.19.1's LoraConfig.save_pretrained writes (json.dumps(indent=2, sort_keys=True), no
// trailing newline), taken from adapters that release produced; the values are ours.
const goldenConfig = `{
  "alora_invocation_tokens": null,
  "alpha_pattern": {},
  "arrow_config": null,
  "auto_mapping": null,
  "base_model_name_or_path": "meta-llama/Llama-3.2-1B-Instruct",
  "bias": "none",
  "corda_config": null,
  "ensure_weight_tying": false,
  "eva_config": null,
  "exclude_modules": null,
  "fan_in_fan_out": false,
  "inference_mode": true,
  "init_lora_weights": true,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 16,
  "lora_bias": false,
  "lora_dropout": 0.05,
  "lora_ga_config": null,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "peft_type": "LORA",
  "peft_version": "0.19.1",
  "qalora_group_size": 16,
  "r": 8,
  "rank_pattern": {},
  "revision": null,
  "target_modules": [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj"
  ],
  "target_parameters": null,
  "task_type": "CAUSAL_LM",
  "trainable_token_indices": null,
  "use_bdlora": null,
  "use_dora": false,
  "use_qalora": false,
  "use_rslora": false
}`

// trained returns a NewRandom adapter whose B is non-zero too, as after training.
func trained(c Config, seed int64) *Adapter {
	a := NewRandom(c, tinyModel(), seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 99))
	for _, m := range slices.Sorted(maps.Keys(a.B)) {
		for i := range a.B[m] {
			a.B[m][i] = float32(rng.NormFloat64() * 0.01)
		}
	}
	return a
}

func TestSaveLoadRoundTrip(t *testing.T) {
	mc := tinyModel()
	c := NewConfig(2, 4, 0.1, "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
	c.BaseModelNameOrPath = "tiny-llama"
	a := trained(c, 7)

	dir1, dir2 := t.TempDir(), filepath.Join(t.TempDir(), "nested", "adapter")
	if err := Save(dir1, a, mc); err != nil {
		t.Fatal(err)
	}
	if err := Save(dir2, trained(c, 7), mc); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ConfigFileName, WeightsFileName} {
		b1, err := os.ReadFile(filepath.Join(dir1, name))
		if err != nil {
			t.Fatal(err)
		}
		b2, err := os.ReadFile(filepath.Join(dir2, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Errorf("%s differs between two saves of the same adapter", name)
		}
	}
	entries, err := os.ReadDir(dir1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{ConfigFileName, WeightsFileName}; !slices.Equal(names, want) {
		t.Errorf("adapter directory holds %q, want %q (no temporary files left)", names, want)
	}

	// The weights file: exactly PEFT's keys and shapes, F32, metadata {"format": "pt"}.
	f, err := safetensors.ReadFile(filepath.Join(dir1, WeightsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(f.Metadata, map[string]string{"format": "pt"}) {
		t.Errorf("metadata = %v, want map[format:pt]", f.Metadata)
	}
	want := map[string][]int{}
	for i := range 2 {
		p := "base_model.model.model.layers." + string(rune('0'+i))
		want[p+".self_attn.q_proj.lora_A.weight"] = []int{2, 8}
		want[p+".self_attn.q_proj.lora_B.weight"] = []int{8, 2}
		want[p+".self_attn.k_proj.lora_A.weight"] = []int{2, 8}
		want[p+".self_attn.k_proj.lora_B.weight"] = []int{4, 2}
		want[p+".self_attn.v_proj.lora_A.weight"] = []int{2, 8}
		want[p+".self_attn.v_proj.lora_B.weight"] = []int{4, 2}
		want[p+".self_attn.o_proj.lora_A.weight"] = []int{2, 8}
		want[p+".self_attn.o_proj.lora_B.weight"] = []int{8, 2}
		want[p+".mlp.gate_proj.lora_A.weight"] = []int{2, 8}
		want[p+".mlp.gate_proj.lora_B.weight"] = []int{12, 2}
		want[p+".mlp.up_proj.lora_A.weight"] = []int{2, 8}
		want[p+".mlp.up_proj.lora_B.weight"] = []int{12, 2}
		want[p+".mlp.down_proj.lora_A.weight"] = []int{2, 12}
		want[p+".mlp.down_proj.lora_B.weight"] = []int{8, 2}
	}
	if got := f.Names(); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Errorf("tensor names = %q, want %q", got, slices.Sorted(maps.Keys(want)))
	}
	for name, shape := range want {
		tn := f.Tensors[name]
		if tn.DType != safetensors.F32 || !slices.Equal(tn.Shape, shape) {
			t.Errorf("%s is %s %v, want F32 %v", name, tn.DType, tn.Shape, shape)
		}
	}
	// lora_A of layer 0 q_proj holds A row-major: spot-check the raw bytes.
	raw := f.Tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].Data
	if got, want := binary.LittleEndian.Uint32(raw[4*9:]), math.Float32bits(a.A["model.layers.0.self_attn.q_proj"][9]); got != want {
		t.Errorf("lora_A[1][1] bits = %#x, want %#x", got, want)
	}

	got, err := Load(dir1, mc)
	if err != nil {
		t.Fatal(err)
	}
	if got.DType != safetensors.F32 {
		t.Errorf("loaded DType = %q, want F32", got.DType)
	}
	if !reflect.DeepEqual(got.Config, a.Config) {
		t.Errorf("loaded config = %+v, want %+v", got.Config, a.Config)
	}
	if !reflect.DeepEqual(got.A, a.A) || !reflect.DeepEqual(got.B, a.B) {
		t.Error("loaded A/B differ from the saved ones")
	}
}

func TestConfigGolden(t *testing.T) {
	c := NewConfig(8, 16, 0.05, "q_proj", "k_proj", "v_proj", "o_proj")
	c.BaseModelNameOrPath = "meta-llama/Llama-3.2-1B-Instruct"
	got, err := marshalConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != goldenConfig {
		t.Errorf("adapter_config.json:\n%s\nwant:\n%s", got, goldenConfig)
	}
	// The golden's keys are sorted, as sort_keys=True writes them.
	var keys []string
	dec := json.NewDecoder(strings.NewReader(goldenConfig))
	dec.Token() // {
	for dec.More() {
		tok, _ := dec.Token()
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	if !slices.IsSorted(keys) || len(keys) != 38 {
		t.Errorf("golden keys (%d) = %q, want 38 sorted keys", len(keys), keys)
	}
	// And it reads back as the same Config.
	back, err := parseConfig([]byte(goldenConfig))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("parseConfig(golden) = %+v, want %+v", back, c)
	}
}

func TestConfigJSONSpelling(t *testing.T) {
	tests := []struct {
		edit func(*Config)
		want string // a line of the output
	}{
		{func(c *Config) { c.LoraDropout = 0 }, `"lora_dropout": 0.0,`},
		{func(c *Config) { c.LoraDropout = 0.1 }, `"lora_dropout": 0.1,`},
		{func(c *Config) { c.LoraDropout = 1e-5 }, `"lora_dropout": 1e-05,`},
		{func(c *Config) { c.LoraAlpha = 32 }, `"lora_alpha": 32,`},
		{func(c *Config) { c.LoraAlpha = 0.5 }, `"lora_alpha": 0.5,`},
		{func(c *Config) { c.BaseModelNameOrPath = "" }, `"base_model_name_or_path": null,`},
		{func(c *Config) { c.BaseModelNameOrPath = "a<b>&é😀" }, `"base_model_name_or_path": "a<b>&\u00e9\ud83d\ude00",`},
		{func(c *Config) { c.InferenceMode = false }, `"inference_mode": true,`},
		{func(c *Config) { c.InitLoraWeights = "gaussian" }, `"init_lora_weights": "gaussian",`},
		{func(c *Config) { c.InitLoraWeights = nil }, `"init_lora_weights": true,`},
		{func(c *Config) { c.UseRSLoRA = true }, `"use_rslora": true`},
	}
	for _, tt := range tests {
		c := NewConfig(8, 16, 0.05, "q_proj")
		tt.edit(&c)
		b, err := marshalConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(strings.Split(string(b), "\n"), "  "+tt.want) {
			t.Errorf("adapter_config.json lacks the line %q:\n%s", tt.want, b)
		}
	}
}

func TestPyRepr(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0.0", 1: "1.0", -2: "-2.0", 0.05: "0.05", 0.1: "0.1", 1e-4: "0.0001",
		1e-5: "1e-05", 1.5e-7: "1.5e-07", 1e16: "1e+16", 123456.789: "123456.789",
	} {
		if got := pyRepr(v); got != want {
			t.Errorf("pyRepr(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestSaveBF16(t *testing.T) {
	mc := tinyModel()
	a := trained(NewConfig(2, 4, 0, "q_proj"), 3)
	a.DType = safetensors.BF16
	dir := t.TempDir()
	if err := Save(dir, a, mc); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, mc)
	if err != nil {
		t.Fatal(err)
	}
	if got.DType != safetensors.BF16 {
		t.Errorf("DType = %q, want BF16", got.DType)
	}
	m := "model.layers.1.self_attn.q_proj"
	for i, v := range a.A[m] {
		if want := safetensors.BF16ToFloat32(safetensors.Float32ToBF16(v)); got.A[m][i] != want {
			t.Fatalf("A[%d] = %g, want %g (%g rounded to bf16)", i, got.A[m][i], want, v)
		}
	}
}

func TestSaveRejectsMismatch(t *testing.T) {
	mc := tinyModel()
	a := trained(NewConfig(2, 4, 0, "q_proj"), 3)
	delete(a.B, "model.layers.0.self_attn.q_proj")
	dir := filepath.Join(t.TempDir(), "out")
	if err := Save(dir, a, mc); err == nil || !strings.Contains(err.Error(), "missing: [model.layers.0.self_attn.q_proj B]") {
		t.Errorf("Save() = %v, want a missing-B error", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save created %s despite the error", dir)
	}
}

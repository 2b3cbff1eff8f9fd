package peft

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// writeAdapter writes an adapter directory by hand: a config text and tensors by name.
func writeAdapter(t *testing.T, config string, tensors map[string][]int) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for name, shape := range tensors {
		n := 1
		for _, d := range shape {
			n *= d
		}
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(i) / 8
		}
		tn, err := safetensors.FromFloat32(name, shape, vals, safetensors.F32)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tn)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFileName), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// qConfig is a PEFT-written config for r=2 on q_proj and v_proj, with target_modules in a
// set's arbitrary order, lora_alpha as a float and a key from some future release.
const qConfig = `{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 8.0,
  "lora_dropout": 0.0, "target_modules": ["v_proj", "q_proj"], "bias": "none",
  "inference_mode": true, "some_future_key": {"x": 1}, "use_dora": false, "rank_pattern": {}}`

// qTensors are the tensors qConfig needs on tinyModel (q: in 8 out 8, v: in 8 out 4).
func qTensors(infix string) map[string][]int {
	m := map[string][]int{}
	for i := range 2 {
		p := "base_model.model.model.layers." + string(rune('0'+i)) + ".self_attn."
		m[p+"q_proj.lora_A"+infix+".weight"] = []int{2, 8}
		m[p+"q_proj.lora_B"+infix+".weight"] = []int{8, 2}
		m[p+"v_proj.lora_A"+infix+".weight"] = []int{2, 8}
		m[p+"v_proj.lora_B"+infix+".weight"] = []int{4, 2}
	}
	return m
}

func TestLoadPEFTWritten(t *testing.T) {
	a, err := Load(writeAdapter(t, qConfig, qTensors("")), tinyModel())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Config.TargetModules, []string{"v_proj", "q_proj"}) || a.Config.Scale() != 4 {
		t.Errorf("config = %+v, want targets [v_proj q_proj] and scale 8/2 = 4", a.Config)
	}
	if got := slices.Sorted(maps.Keys(a.A)); len(got) != 4 || got[0] != "model.layers.0.self_attn.q_proj" {
		t.Errorf("A modules = %q", got)
	}
	if got := a.B["model.layers.1.self_attn.v_proj"]; len(got) != 8 || got[3] != 3.0/8 {
		t.Errorf("B[layer 1 v_proj] = %v, want 8 values i/8", got)
	}
}

func TestLoadNormalisesAdapterName(t *testing.T) {
	mc := tinyModel()
	want, err := Load(writeAdapter(t, qConfig, qTensors("")), mc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(writeAdapter(t, qConfig, qTensors(".default")), mc)
	if err != nil {
		t.Fatalf("Load with .default. keys: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("adapter loaded from .default. keys differs from the plain one")
	}

	// The same tensor under both spellings is a duplicate, and two adapter names are refused.
	dup := qTensors("")
	dup["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"] = []int{2, 8}
	_, err = Load(writeAdapter(t, qConfig, dup), mc)
	if err == nil || !strings.Contains(err.Error(), "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight (same tensor as") {
		t.Errorf("Load with a duplicated tensor = %v, want a duplicate error", err)
	}
	two := qTensors(".default")
	delete(two, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight")
	two["base_model.model.model.layers.0.self_attn.q_proj.lora_A.other.weight"] = []int{2, 8}
	_, err = Load(writeAdapter(t, qConfig, two), mc)
	if err == nil || !strings.Contains(err.Error(), "several adapters [default other]") {
		t.Errorf("Load with two adapter names = %v, want a several-adapters error", err)
	}
}

func TestLoadAllLinear(t *testing.T) {
	mc := tinyModel()
	a := trained(NewConfig(2, 4, 0, Projections...), 5)
	dir := t.TempDir()
	if err := Save(dir, a, mc); err != nil {
		t.Fatal(err)
	}
	cfg := `{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 4, "target_modules": "all-linear"}`
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, mc)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Config.TargetModules, Projections) || !reflect.DeepEqual(got.A, a.A) {
		t.Errorf("all-linear loaded targets %q", got.Config.TargetModules)
	}
}

func TestLoadErrors(t *testing.T) {
	mc := tinyModel()
	tests := []struct {
		name    string
		config  string
		tensors map[string][]int
		want    []string
	}{
		{
			name:   "missing, unexpected and mis-shaped at once",
			config: qConfig,
			tensors: func() map[string][]int {
				m := qTensors("")
				delete(m, "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight")
				delete(m, "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight")
				m["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"] = []int{8, 2}
				m["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] = []int{2, 9}
				m["base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"] = []int{2, 8}
				m["base_model.model.lm_head.weight"] = []int{16, 8}
				return m
			}(),
			want: []string{
				"missing: [base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight]",
				"unexpected: [base_model.model.lm_head.weight base_model.model.model.layers.0.mlp.up_proj.lora_A.weight]",
				"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight is [2 9], want [2 8]",
				"base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight is [8 2], want [4 2]",
			},
		},
		{
			name: "sized for another base model",
			config: `{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 8, "target_modules": ["q_proj"],
				"base_model_name_or_path": "org/wider-model"}`,
			tensors: map[string][]int{
				"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {2, 16},
				"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": {16, 2},
				"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight": {2, 16},
				"base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight": {16, 2},
			},
			want: []string{"does not fit this base model (2 layers, hidden_size 8)", "it was trained on org/wider-model: load it with that model",
				"q_proj.lora_A.weight is [2 16], want [2 8]"},
		},
		{
			name:   "bad config and a missing tensor together",
			config: `{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 0, "lora_dropout": 1.5, "target_modules": ["q_proj", "v_proj", "embed"], "use_dora": true, "rank_pattern": {"q_proj": 4}, "bias": "all"}`,
			tensors: func() map[string][]int {
				m := qTensors("")
				delete(m, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
				return m
			}(),
			want: []string{
				"lora_alpha (0) must be > 0", "lora_dropout (1.5)", `"embed" is not a Llama projection`,
				"use_dora true is not supported", "rank_pattern map[q_proj:4] is not supported", `bias "all"`,
				"missing: [base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight]",
			},
		},
		{
			name:    "regex target_modules",
			config:  `{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 8, "target_modules": ".*q_proj"}`,
			tensors: qTensors(""),
			want:    []string{`target_modules ".*q_proj": a regular expression is not supported`, "target_modules is empty"},
		},
		{
			name:    "layers_to_transform and DoRA-like extras",
			config:  `{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "layers_to_transform": [0], "lora_bias": true, "use_qalora": true}`,
			tensors: qTensors(""),
			want:    []string{"layers_to_transform [0] is not supported", "lora_bias true", "use_qalora true"},
		},
		{
			name:    "other PEFT method",
			config:  `{"peft_type": "IA3", "task_type": "CAUSAL_LM", "target_modules": ["q_proj", "v_proj"]}`,
			tensors: qTensors(""),
			want:    []string{`peft_type "IA3" must be LORA`},
		},
		{
			name:    "not JSON",
			config:  `{"peft_type": "LORA",`,
			tensors: qTensors(""),
			want:    []string{ConfigFileName, "unexpected end of JSON input"},
		},
		{
			name:    "wrong JSON type",
			config:  `{"peft_type": "LORA", "r": "8"}`,
			tensors: qTensors(""),
			want:    []string{"cannot unmarshal string"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeAdapter(t, tt.config, tt.tensors), mc)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load() = %q\nwant it to contain %q", err, w)
				}
			}
		})
	}

	t.Run("a full model directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := model.WriteConfig(dir, mc); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir, mc)
		if err == nil || !strings.Contains(err.Error(), "is a full model directory, not a PEFT adapter") {
			t.Errorf("Load(model dir) = %v, want an error saying it is a model directory", err)
		}
	})
	t.Run("mismatch is a MismatchError", func(t *testing.T) {
		m := qTensors("")
		delete(m, "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight")
		_, err := Load(writeAdapter(t, qConfig, m), mc)
		var me *MismatchError
		if !errors.As(err, &me) || len(me.Missing) != 1 {
			t.Errorf("Load() = %v, want a *MismatchError with one missing tensor", err)
		}
	})
	t.Run("no weights file", func(t *testing.T) {
		dir := writeAdapter(t, qConfig, qTensors(""))
		os.Remove(filepath.Join(dir, WeightsFileName))
		os.WriteFile(filepath.Join(dir, "adapter_model.bin"), []byte("pickle"), 0o644)
		_, err := Load(dir, mc)
		if err == nil || !strings.Contains(err.Error(), "safe_serialization=True") || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Load() = %v, want a not-exist error pointing at safe_serialization", err)
		}
	})
	t.Run("no config", func(t *testing.T) {
		_, err := Load(t.TempDir(), mc)
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Load() = %v, want a not-exist error", err)
		}
	})
	t.Run("invalid base config", func(t *testing.T) {
		bad := mc
		bad.HiddenSize = 0
		_, err := Load(writeAdapter(t, qConfig, qTensors("")), bad)
		if err == nil || !strings.Contains(err.Error(), "hidden_size (0)") {
			t.Errorf("Load() = %v, want a base config error", err)
		}
	})
}

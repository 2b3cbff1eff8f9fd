package peft

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
)

// tinyModel is a 2-layer Llama with grouped-query attention and every projection shape
// distinct: hidden 8, 2 heads × head_dim 4 (q out 8), 1 kv head (k/v out 4), intermediate 12.
func tinyModel() model.Config {
	return model.Config{
		ModelType:             "llama",
		HiddenSize:            8,
		NumHiddenLayers:       2,
		NumAttentionHeads:     2,
		NumKeyValueHeads:      1,
		IntermediateSize:      12,
		VocabSize:             16,
		RMSNormEps:            1e-5,
		RopeTheta:             10000,
		MaxPositionEmbeddings: 32,
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none means valid
	}{
		{"default attention", func(*Config) {}, nil},
		{"all projections", func(c *Config) { c.TargetModules = slices.Clone(Projections) }, nil},
		{"gaussian init", func(c *Config) { c.InitLoraWeights = "gaussian" }, nil},
		{"nil init means true", func(c *Config) { c.InitLoraWeights = nil }, nil},
		{"rslora", func(c *Config) { c.UseRSLoRA = true }, nil},
		{"dropout 0", func(c *Config) { c.LoraDropout = 0 }, nil},
		{"r 0", func(c *Config) { c.R = 0 }, []string{"r (0) must be > 0"}},
		{"negative alpha", func(c *Config) { c.LoraAlpha = -1 }, []string{"lora_alpha (-1) must be > 0"}},
		{"NaN alpha", func(c *Config) { c.LoraAlpha = math.NaN() }, []string{"lora_alpha (NaN)"}},
		{"dropout 1", func(c *Config) { c.LoraDropout = 1 }, []string{"lora_dropout (1) must be in [0, 1)"}},
		{"negative dropout", func(c *Config) { c.LoraDropout = -0.1 }, []string{"lora_dropout (-0.1)"}},
		{"unknown target", func(c *Config) { c.TargetModules = []string{"q_proj", "lm_head"} }, []string{`"lm_head" is not a Llama projection`}},
		{"duplicate target", func(c *Config) { c.TargetModules = []string{"q_proj", "q_proj"} }, []string{`"q_proj" is listed twice`}},
		{"no targets", func(c *Config) { c.TargetModules = nil }, []string{"target_modules is empty"}},
		{"bias", func(c *Config) { c.Bias = "all" }, []string{`bias "all" is not supported`}},
		{"fan in fan out", func(c *Config) { c.FanInFanOut = true }, []string{"fan_in_fan_out must be false"}},
		{"modules to save", func(c *Config) { c.ModulesToSave = []string{"lm_head"} }, []string{"modules_to_save [lm_head]"}},
		{"pissa", func(c *Config) { c.InitLoraWeights = "pissa" }, []string{`init_lora_weights "pissa" is not supported`}},
		{"peft type", func(c *Config) { c.PeftType = "IA3" }, []string{`peft_type "IA3" must be LORA`}},
		{"task type", func(c *Config) { c.TaskType = "SEQ_CLS" }, []string{`task_type "SEQ_CLS" must be CAUSAL_LM`}},
		{"several problems at once", func(c *Config) { c.R = -2; c.LoraDropout = 2; c.TargetModules = []string{"x"} },
			[]string{"r (-2)", "lora_dropout (2)", `"x" is not a Llama projection`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig(8, 16, 0.05, "q_proj", "k_proj", "v_proj", "o_proj")
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestZeroConfigNamesEveryField(t *testing.T) {
	err := Config{}.Validate()
	if err == nil {
		t.Fatal("Config{}.Validate() = nil, want an error")
	}
	for _, w := range []string{"peft_type", "task_type", "r (0)", "lora_alpha (0)", "target_modules is empty", `bias ""`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Config{}.Validate() = %q, want it to mention %q", err, w)
		}
	}
}

func TestScale(t *testing.T) {
	c := NewConfig(8, 16, 0, "q_proj")
	if got := c.Scale(); got != 2 {
		t.Errorf("Scale() = %g, want 16/8 = 2", got)
	}
	c = NewConfig(16, 16, 0, "q_proj")
	c.UseRSLoRA = true
	if got := c.Scale(); got != 4 {
		t.Errorf("Scale() with use_rslora = %g, want 16/√16 = 4", got)
	}
}

func TestModuleShape(t *testing.T) {
	mc := tinyModel()
	mc.HeadDim = 6 // q out 12, kv out 6: distinct from hidden so o_proj's transpose shows
	tests := []struct {
		module  string
		in, out int
	}{
		{"q_proj", 8, 12},
		{"k_proj", 8, 6},
		{"v_proj", 8, 6},
		{"o_proj", 12, 8},
		{"gate_proj", 8, 12},
		{"up_proj", 8, 12},
		{"down_proj", 12, 8},
		{"model.layers.0.self_attn.q_proj", 8, 12},
		{"model.layers.1.self_attn.o_proj", 12, 8},
		{"model.layers.1.mlp.down_proj", 12, 8},
	}
	for _, tt := range tests {
		in, out, err := ModuleShape(mc, tt.module)
		if err != nil || in != tt.in || out != tt.out {
			t.Errorf("ModuleShape(%q) = %d, %d, %v; want %d, %d, nil", tt.module, in, out, err, tt.in, tt.out)
		}
	}
	for _, bad := range []string{
		"lm_head",
		"model.layers.2.self_attn.q_proj",  // only 2 layers
		"model.layers.0.mlp.q_proj",        // wrong scope
		"model.layers.x.self_attn.q_proj",  // not an index
		"model.layers.01.self_attn.q_proj", // not canonical
		"model.layers.0.self_attn.q_proj.weight",
		"layers.0.self_attn.q_proj",
	} {
		if _, _, err := ModuleShape(mc, bad); err == nil {
			t.Errorf("ModuleShape(%q) succeeded, want an error", bad)
		}
	}
}

func TestModules(t *testing.T) {
	got := Modules(tinyModel(), []string{"v_proj", "down_proj", "q_proj", "nonsense"})
	want := []string{
		"model.layers.0.self_attn.v_proj",
		"model.layers.0.mlp.down_proj",
		"model.layers.0.self_attn.q_proj",
		"model.layers.1.self_attn.v_proj",
		"model.layers.1.mlp.down_proj",
		"model.layers.1.self_attn.q_proj",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Modules() = %q, want %q", got, want)
	}
}

func TestTensorNames(t *testing.T) {
	a, b := TensorNames(ModulePath(3, "gate_proj"))
	if a != "base_model.model.model.layers.3.mlp.gate_proj.lora_A.weight" || b != "base_model.model.model.layers.3.mlp.gate_proj.lora_B.weight" {
		t.Errorf("TensorNames = %q, %q", a, b)
	}
}

func TestCheck(t *testing.T) {
	mc := tinyModel()
	a := NewRandom(NewConfig(2, 4, 0, "q_proj", "down_proj"), mc, 1)
	if err := a.Check(mc); err != nil {
		t.Fatalf("Check() = %v, want nil", err)
	}
	delete(a.A, "model.layers.1.mlp.down_proj")
	a.B["model.layers.0.self_attn.q_proj"] = a.B["model.layers.0.self_attn.q_proj"][:3]
	a.A["model.layers.0.self_attn.k_proj"] = make([]float32, 16)
	err := a.Check(mc)
	if err == nil {
		t.Fatal("Check() = nil, want an error")
	}
	for _, w := range []string{
		"missing: [model.layers.1.mlp.down_proj A]",
		"unexpected: [model.layers.0.self_attn.k_proj A]",
		"model.layers.0.self_attn.q_proj B has 3 values, want [8 2] = 16",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Check() = %q, want it to contain %q", err, w)
		}
	}
}

// Package peft reads, writes, creates and merges LoRA adapters in the Hugging Face PEFT
// format, so an adapter trained here loads with peft.PeftModel.from_pretrained and with vLLM
// --lora-modules, and one trained with PEFT merges into a base model here. Pure Go: it sees
// weights as float32 slices and never builds a graph.
//
// An adapter directory holds two files:
//
//	adapter_config.json        LoraConfig, as PEFT's save_pretrained writes it (Config)
//	adapter_model.safetensors  per decoder layer i and target module:
//	  base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_A.weight  [r, in]
//	  base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_B.weight  [out, r]
//	  base_model.model.model.layers.{i}.mlp.{gate,up,down}_proj.lora_{A,B}.weight
//
// in and out are the nn.Linear features of the adapted projection (ModuleShape), so the
// adapted layer computes y = x·Wᵀ + Scale()·x·Aᵀ·Bᵀ and merging is W' = W + Scale()·B·A.
package peft

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// Config is PEFT's LoraConfig for a Llama causal LM: the fields this package understands,
// with the names adapter_config.json uses. Save writes every other field PEFT writes at its
// default (see configFile); Load rejects files that set one of them to something that would
// change the adapter's meaning (DoRA, rank_pattern, layers_to_transform, ...).
type Config struct {
	PeftType            string  `json:"peft_type"`                         // "LORA"
	TaskType            string  `json:"task_type"`                         // "CAUSAL_LM"
	BaseModelNameOrPath string  `json:"base_model_name_or_path,omitempty"` // written as null when empty
	R                   int     `json:"r"`                                 // rank
	LoraAlpha           float64 `json:"lora_alpha"`
	LoraDropout         float64 `json:"lora_dropout"` // on the adapter's input, training only
	// TargetModules are projection names among q_proj, k_proj, v_proj, o_proj, gate_proj,
	// up_proj and down_proj; their order is the order of Modules within a layer.
	TargetModules []string `json:"target_modules"`
	Bias          string   `json:"bias"`           // "none": Llama projections have no bias
	FanInFanOut   bool     `json:"fan_in_fan_out"` // false: nn.Linear stores [out, in]
	// InferenceMode is what PEFT records; Save writes true, as PeftModel.save_pretrained does.
	InferenceMode bool     `json:"inference_mode"`
	ModulesToSave []string `json:"modules_to_save"` // must be empty: only LoRA tensors are saved
	// InitLoraWeights is true, false or a method name such as "gaussian" (PEFT's
	// bool | str). nil means PEFT's default, true. Methods that also rewrite the base weights
	// (pissa, olora, loftq, corda, eva) are rejected: such an adapter is wrong on the
	// original base model.
	InitLoraWeights any  `json:"init_lora_weights"`
	UseRSLoRA       bool `json:"use_rslora"` // scale alpha/√r instead of alpha/r
}

// Names of the two files of an adapter directory.
const (
	ConfigFileName  = "adapter_config.json"
	WeightsFileName = "adapter_model.safetensors"
)

// Projections lists the Llama linear layers LoRA can target, in the order of a decoder
// layer's state_dict.
var Projections = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// projectionScope gives the submodule each projection lives in.
var projectionScope = map[string]string{
	"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
	"gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp",
}

// NewConfig returns a Config with PEFT's defaults for a Llama LoRA (peft_type LORA,
// task_type CAUSAL_LM, bias none, inference_mode and init_lora_weights true) and the given
// hyper-parameters. targets is copied.
func NewConfig(r int, alpha, dropout float64, targets ...string) Config {
	return Config{
		PeftType:        "LORA",
		TaskType:        "CAUSAL_LM",
		R:               r,
		LoraAlpha:       alpha,
		LoraDropout:     dropout,
		TargetModules:   slices.Clone(targets),
		Bias:            "none",
		InferenceMode:   true,
		InitLoraWeights: true,
	}
}

// Scale is the factor on the adapter's output: lora_alpha / r, or lora_alpha / √r with
// use_rslora (PEFT's LoraLayer.update_layer).
func (c Config) Scale() float64 {
	if c.UseRSLoRA {
		return c.LoraAlpha / math.Sqrt(float64(c.R))
	}
	return c.LoraAlpha / float64(c.R)
}

// Validate checks the config describes a LoRA this package can save, load and merge, with
// messages that name the adapter_config.json field to fix. It reports every problem.
func (c Config) Validate() error {
	var errs []error
	if c.PeftType != "LORA" {
		errs = append(errs, fmt.Errorf("peft_type %q must be LORA (NewConfig sets it)", c.PeftType))
	}
	if c.TaskType != "CAUSAL_LM" {
		errs = append(errs, fmt.Errorf("task_type %q must be CAUSAL_LM (NewConfig sets it)", c.TaskType))
	}
	if c.R <= 0 {
		errs = append(errs, fmt.Errorf("r (%d) must be > 0", c.R))
	}
	if !(c.LoraAlpha > 0) || math.IsInf(c.LoraAlpha, 0) {
		errs = append(errs, fmt.Errorf("lora_alpha (%g) must be > 0 and finite", c.LoraAlpha))
	}
	if !(c.LoraDropout >= 0 && c.LoraDropout < 1) {
		errs = append(errs, fmt.Errorf("lora_dropout (%g) must be in [0, 1)", c.LoraDropout))
	}
	if len(c.TargetModules) == 0 {
		errs = append(errs, errors.New("target_modules is empty"))
	}
	seen := map[string]bool{}
	for _, t := range c.TargetModules {
		if _, ok := projectionScope[t]; !ok {
			errs = append(errs, fmt.Errorf("target module %q is not a Llama projection (%s)", t, strings.Join(Projections, ", ")))
		} else if seen[t] {
			errs = append(errs, fmt.Errorf("target module %q is listed twice", t))
		}
		seen[t] = true
	}
	if c.Bias != "none" {
		errs = append(errs, fmt.Errorf("bias %q is not supported: Llama projections have no bias, use none", c.Bias))
	}
	if c.FanInFanOut {
		errs = append(errs, errors.New("fan_in_fan_out must be false: Llama's nn.Linear weights are [out, in]"))
	}
	if len(c.ModulesToSave) > 0 {
		errs = append(errs, fmt.Errorf("modules_to_save %v is not supported: only LoRA tensors are read and written", c.ModulesToSave))
	}
	switch v := c.InitLoraWeights.(type) {
	case nil, bool:
	case string:
		if v != "gaussian" {
			errs = append(errs, fmt.Errorf("init_lora_weights %q is not supported: that method also changes the base weights, so the adapter is wrong on the original model", v))
		}
	default:
		errs = append(errs, fmt.Errorf("init_lora_weights %v (%T) must be a bool or a method name", v, v))
	}
	return errors.Join(errs...)
}

// ModulePath returns the module path of a projection in decoder layer i, the Hugging Face
// name of its weight without ".weight": ModulePath(3, "q_proj") is
// "model.layers.3.self_attn.q_proj". It panics on an unknown projection (a programming error).
func ModulePath(layer int, projection string) string {
	scope, ok := projectionScope[projection]
	if !ok {
		panic(fmt.Sprintf("peft.ModulePath: %q is not a Llama projection", projection))
	}
	return model.LayerPrefix(layer) + scope + "." + projection
}

// Modules lists the module paths adapted by targets in a model of config c: layer by layer,
// and within a layer in the order of targets. Names that are not Llama projections are
// skipped (Config.Validate reports them).
func Modules(c model.Config, targets []string) []string {
	out := make([]string, 0, c.NumHiddenLayers*len(targets))
	for i := range c.NumHiddenLayers {
		for _, t := range targets {
			if _, ok := projectionScope[t]; ok {
				out = append(out, ModulePath(i, t))
			}
		}
	}
	return out
}

// ModuleShape returns the nn.Linear in and out features of module, either a projection name
// ("q_proj") or a module path ("model.layers.3.self_attn.q_proj", whose layer must exist in c):
//
//	q_proj              in = hidden          out = heads·head_dim
//	k_proj, v_proj      in = hidden          out = kv_heads·head_dim
//	o_proj              in = heads·head_dim  out = hidden
//	gate_proj, up_proj  in = hidden          out = intermediate
//	down_proj           in = intermediate    out = hidden
//
// lora_A is then [r, in] and lora_B [out, r].
func ModuleShape(c model.Config, module string) (in, out int, err error) {
	proj := module
	if strings.Contains(module, ".") {
		proj, err = parseModulePath(c, module)
		if err != nil {
			return 0, 0, err
		}
	}
	h, inter := c.HiddenSize, c.IntermediateSize
	q := c.NumAttentionHeads * c.HeadDimension()
	kv := c.NumKeyValueHeads * c.HeadDimension()
	switch proj {
	case "q_proj":
		return h, q, nil
	case "k_proj", "v_proj":
		return h, kv, nil
	case "o_proj":
		return q, h, nil
	case "gate_proj", "up_proj":
		return h, inter, nil
	case "down_proj":
		return inter, h, nil
	}
	return 0, 0, fmt.Errorf("module %q is not a Llama projection (%s)", module, strings.Join(Projections, ", "))
}

// parseModulePath checks "model.layers.{i}.{scope}.{proj}" against c and returns proj.
func parseModulePath(c model.Config, path string) (string, error) {
	parts := strings.Split(path, ".")
	if len(parts) != 5 || parts[0] != "model" || parts[1] != "layers" {
		return "", fmt.Errorf("module path %q is not model.layers.{i}.{self_attn|mlp}.{projection}", path)
	}
	i, err := strconv.Atoi(parts[2])
	if err != nil || i < 0 || strconv.Itoa(i) != parts[2] {
		return "", fmt.Errorf("module path %q: layer %q is not a layer index", path, parts[2])
	}
	if i >= c.NumHiddenLayers {
		return "", fmt.Errorf("module path %q: layer %d is out of range (num_hidden_layers %d)", path, i, c.NumHiddenLayers)
	}
	proj := parts[4]
	scope, ok := projectionScope[proj]
	if !ok {
		return "", fmt.Errorf("module path %q: %q is not a Llama projection (%s)", path, proj, strings.Join(Projections, ", "))
	}
	if parts[3] != scope {
		return "", fmt.Errorf("module path %q: %s lives in %s, not %s", path, proj, scope, parts[3])
	}
	return proj, nil
}

// keyPrefix is what PeftModel's state_dict puts before the base model's module names.
const keyPrefix = "base_model.model."

// TensorNames returns the adapter_model.safetensors names of a module's two matrices, e.g.
// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" and "….lora_B.weight".
func TensorNames(module string) (a, b string) {
	return keyPrefix + module + ".lora_A.weight", keyPrefix + module + ".lora_B.weight"
}

// Adapter is a LoRA adapter: per adapted module path (see Modules), A [r, in] and B [out, r]
// as row-major float32.
type Adapter struct {
	Config Config
	A, B   map[string][]float32
	// DType is how Save stores the matrices; empty means F32, which is what PEFT saves
	// (it keeps adapter weights in float32 even on a bf16 base). Load sets it from the file.
	DType safetensors.DType
}

// MismatchError lists every way an adapter's tensors (or, from Merge, the base weights)
// differ from what the adapter config and the base model's config describe. Each list is
// sorted.
type MismatchError struct {
	What       string   // what was checked; empty means "LoRA adapter tensors"
	Missing    []string // expected tensors (or modules) that are absent
	Unexpected []string // tensors (or modules) the config does not explain
	WrongShape []string // "NAME is [got], want [want]"
}

func (e *MismatchError) Error() string {
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
	what := e.What
	if what == "" {
		what = "LoRA adapter tensors"
	}
	return what + " do not match the adapter config: " + strings.Join(parts, "; ")
}

// empty reports whether no mismatch was recorded.
func (e *MismatchError) empty() bool {
	return len(e.Missing)+len(e.Unexpected)+len(e.WrongShape) == 0
}

// sorted sorts the lists and returns e, or nil when there is nothing to report.
func (e *MismatchError) sorted() error {
	if e.empty() {
		return nil
	}
	slices.Sort(e.Missing)
	slices.Sort(e.Unexpected)
	slices.Sort(e.WrongShape)
	return e
}

// Check validates a against the base model config mc: a valid Config, an A and a B for
// exactly the modules Modules(mc, TargetModules) lists, with r·in and out·r values. All
// problems are reported in one error (config problems joined with a *MismatchError).
func (a *Adapter) Check(mc model.Config) error {
	if err := mc.Validate(); err != nil {
		return fmt.Errorf("base model config: %w", err)
	}
	cfgErr := a.Config.Validate()
	var e MismatchError
	want := map[string]bool{}
	r := a.Config.R
	for _, m := range Modules(mc, a.Config.TargetModules) {
		want[m] = true
		in, out, _ := ModuleShape(mc, m) // m comes from Modules: always valid
		for _, x := range []struct {
			name string
			vals map[string][]float32
			rows int
			cols int
		}{{"A", a.A, r, in}, {"B", a.B, out, r}} {
			v, ok := x.vals[m]
			switch {
			case !ok:
				e.Missing = append(e.Missing, m+" "+x.name)
			case r > 0 && len(v) != x.rows*x.cols:
				e.WrongShape = append(e.WrongShape, fmt.Sprintf("%s %s has %d values, want [%d %d] = %d", m, x.name, len(v), x.rows, x.cols, x.rows*x.cols))
			}
		}
	}
	for _, x := range []struct {
		name string
		vals map[string][]float32
	}{{"A", a.A}, {"B", a.B}} {
		for m := range x.vals {
			if !want[m] {
				e.Unexpected = append(e.Unexpected, m+" "+x.name)
			}
		}
	}
	return errors.Join(cfgErr, e.sorted())
}

package peft

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// Load reads the PEFT adapter directory dir for a base model of config mc: adapter_config.json
// and adapter_model.safetensors. It returns one error naming every problem it finds: each
// unsupported or invalid config setting, and, as a *MismatchError, every missing, unexpected
// and mis-shaped tensor (so a wrong adapter is diagnosed in one run). Tensor names written
// with an adapter name, "….lora_A.default.weight" as a raw PeftModel state_dict has them,
// are accepted and normalised to "….lora_A.weight". Any dtype safetensors reads is accepted
// and widened to float32; Adapter.DType records the file's dtype when all tensors share it.
func Load(dir string, mc model.Config) (*Adapter, error) {
	if err := mc.Validate(); err != nil {
		return nil, fmt.Errorf("load adapter %s: base model config: %w", dir, err)
	}
	cfgPath := filepath.Join(dir, ConfigFileName)
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, model.ConfigFileName)); errors.Is(err, fs.ErrNotExist) && statErr == nil {
			err = fmt.Errorf("%w: %s is a full model directory, not a PEFT adapter (use it as the base model directory)", err, dir)
		}
		return nil, fmt.Errorf("load adapter: %w", err)
	}
	c, cfgErr := parseConfig(b)
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(cfgErr, &syntax) || errors.As(cfgErr, &typeErr) {
		return nil, fmt.Errorf("load adapter: %s: %w", cfgPath, cfgErr)
	}
	if cfgErr != nil {
		cfgErr = fmt.Errorf("%s: %w", ConfigFileName, cfgErr)
	}

	wPath := filepath.Join(dir, WeightsFileName)
	f, err := safetensors.ReadFile(wPath)
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "adapter_model.bin")); errors.Is(err, fs.ErrNotExist) && statErr == nil {
			err = fmt.Errorf("%s has only adapter_model.bin (a pickle); save the adapter with safe_serialization=True: %w", dir, err)
		}
		return nil, fmt.Errorf("load adapter %s: %w", dir, errors.Join(cfgErr, err))
	}

	tensors, keyErr := normaliseKeys(f)
	var e MismatchError
	if keyErr != nil {
		e.Unexpected = append(e.Unexpected, keyErr...)
	}
	r := c.R
	modules := Modules(mc, c.TargetModules)
	want := make(map[string]bool, 2*len(modules))
	for _, m := range modules {
		in, out, _ := ModuleShape(mc, m) // m comes from Modules: always valid
		nameA, nameB := TensorNames(m)
		for _, x := range []struct {
			name  string
			shape []int
		}{{nameA, []int{r, in}}, {nameB, []int{out, r}}} {
			want[x.name] = true
			t, ok := tensors[x.name]
			switch {
			case !ok:
				e.Missing = append(e.Missing, x.name)
			case r > 0 && !slices.Equal(t.Shape, x.shape):
				e.WrongShape = append(e.WrongShape, fmt.Sprintf("%s is %v, want %v", t.Name, t.Shape, x.shape))
			}
		}
	}
	for name, t := range tensors {
		if !want[name] {
			e.Unexpected = append(e.Unexpected, t.Name)
		}
	}
	if err := errors.Join(cfgErr, e.sorted()); err != nil {
		if len(e.WrongShape) > 0 { // sized for another model: say which, and what to do
			hint := fmt.Sprintf("the adapter does not fit this base model (%d layers, hidden_size %d)", mc.NumHiddenLayers, mc.HiddenSize)
			if c.BaseModelNameOrPath != "" {
				hint += fmt.Sprintf("; it was trained on %s: load it with that model", c.BaseModelNameOrPath)
			}
			return nil, fmt.Errorf("load adapter %s: %s: %w", dir, hint, err)
		}
		return nil, fmt.Errorf("load adapter %s: %w", dir, err)
	}

	a := &Adapter{Config: c, A: make(map[string][]float32, len(modules)), B: make(map[string][]float32, len(modules))}
	var dtypes []safetensors.DType
	for _, m := range modules {
		nameA, nameB := TensorNames(m)
		for _, x := range []struct {
			name string
			dst  map[string][]float32
		}{{nameA, a.A}, {nameB, a.B}} {
			t := tensors[x.name]
			v, err := t.Float32s()
			if err != nil {
				return nil, fmt.Errorf("load adapter %s: %w", dir, err)
			}
			x.dst[m] = v
			if !slices.Contains(dtypes, t.DType) {
				dtypes = append(dtypes, t.DType)
			}
		}
	}
	a.DType = safetensors.F32
	if len(dtypes) == 1 {
		a.DType = dtypes[0]
	}
	return a, nil
}

// normaliseKeys maps the file's tensors to their canonical names,
// "base_model.model.{module}.lora_{A,B}.weight", dropping an adapter name between lora_X
// and weight. Tensors whose canonical names collide, and tensors of more than one adapter
// name, are returned as problems (in Unexpected's wording); the first of a colliding pair in
// sorted order is kept.
func normaliseKeys(f *safetensors.File) (map[string]safetensors.Tensor, []string) {
	out := make(map[string]safetensors.Tensor, len(f.Tensors))
	var problems []string
	adapterNames := map[string]bool{}
	for _, name := range f.Names() {
		t := f.Tensors[name]
		canon, adapter := canonicalName(name)
		if adapter != "" {
			adapterNames[adapter] = true
		}
		if prev, dup := out[canon]; dup {
			problems = append(problems, fmt.Sprintf("%s (same tensor as %s)", name, prev.Name))
			continue
		}
		out[canon] = t
	}
	if len(adapterNames) > 1 {
		names := make([]string, 0, len(adapterNames))
		for n := range adapterNames {
			names = append(names, n)
		}
		slices.Sort(names)
		problems = append(problems, fmt.Sprintf("tensors of several adapters %v (save one adapter per directory)", names))
	}
	return out, problems
}

// canonicalName strips an adapter name from a LoRA tensor name:
// "X.lora_A.default.weight" → ("X.lora_A.weight", "default"). Other names are returned as
// they are.
func canonicalName(name string) (canon, adapter string) {
	parts := strings.Split(name, ".")
	n := len(parts)
	if n >= 4 && parts[n-1] == "weight" && (parts[n-3] == "lora_A" || parts[n-3] == "lora_B") {
		adapter = parts[n-2]
		return strings.Join(append(parts[:n-2:n-2], "weight"), "."), adapter
	}
	return name, ""
}

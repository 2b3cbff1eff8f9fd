package peft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// FormatVersion is the PEFT release whose adapter_config.json this package writes: the
// same keys, in the same (sorted) order, with the same defaults, recorded as peft_version.
// PEFT drops keys it does not know (from newer releases) with a warning, so older releases
// with that forward-compatibility filter load it too; vLLM reads only the LoRA fields it needs.
const FormatVersion = "0.19.1"

// configFile is adapter_config.json as PEFT 0.19.1 writes it for a LoRA, fields in sorted
// key order because PEFT writes json.dumps(..., indent=2, sort_keys=True). Fields this
// package does not model are written at PEFT's defaults and, when read, must keep a value
// that does not change the adapter's meaning (see unsupported).
type configFile struct {
	AloraInvocationTokens any            `json:"alora_invocation_tokens"`
	AlphaPattern          map[string]any `json:"alpha_pattern"`
	ArrowConfig           any            `json:"arrow_config"`
	AutoMapping           any            `json:"auto_mapping"`
	BaseModelNameOrPath   *string        `json:"base_model_name_or_path"`
	Bias                  string         `json:"bias"`
	CordaConfig           any            `json:"corda_config"`
	EnsureWeightTying     bool           `json:"ensure_weight_tying"`
	EvaConfig             any            `json:"eva_config"`
	ExcludeModules        any            `json:"exclude_modules"`
	FanInFanOut           bool           `json:"fan_in_fan_out"`
	InferenceMode         bool           `json:"inference_mode"`
	InitLoraWeights       any            `json:"init_lora_weights"`
	LayerReplication      any            `json:"layer_replication"`
	LayersPattern         any            `json:"layers_pattern"`
	LayersToTransform     any            `json:"layers_to_transform"`
	LoftqConfig           map[string]any `json:"loftq_config"`
	LoraAlpha             pyNumber       `json:"lora_alpha"`
	LoraBias              bool           `json:"lora_bias"`
	LoraDropout           pyFloat        `json:"lora_dropout"`
	LoraGAConfig          any            `json:"lora_ga_config"`
	MegatronConfig        any            `json:"megatron_config"`
	MegatronCore          string         `json:"megatron_core"`
	ModulesToSave         []string       `json:"modules_to_save"`
	PeftType              string         `json:"peft_type"`
	PeftVersion           string         `json:"peft_version"`
	QaloraGroupSize       int            `json:"qalora_group_size"`
	R                     int            `json:"r"`
	RankPattern           map[string]any `json:"rank_pattern"`
	Revision              *string        `json:"revision"`
	TargetModules         any            `json:"target_modules"` // []string, or a regex / "all-linear" string
	TargetParameters      any            `json:"target_parameters"`
	TaskType              string         `json:"task_type"`
	TrainableTokenIndices any            `json:"trainable_token_indices"`
	UseBDLoRA             any            `json:"use_bdlora"`
	UseDoRA               bool           `json:"use_dora"`
	UseQALoRA             bool           `json:"use_qalora"`
	UseRSLoRA             bool           `json:"use_rslora"`
}

// defaultConfigFile is LoraConfig() as PEFT saves it: what a key absent from a file means.
func defaultConfigFile() configFile {
	return configFile{
		AlphaPattern:    map[string]any{},
		Bias:            "none",
		InferenceMode:   false,
		InitLoraWeights: true,
		LoftqConfig:     map[string]any{},
		LoraAlpha:       8,
		MegatronCore:    "megatron.core",
		PeftVersion:     FormatVersion,
		QaloraGroupSize: 16,
		R:               8,
		RankPattern:     map[string]any{},
	}
}

// marshalConfig renders c as PEFT's save_pretrained would: sorted keys, two-space indent,
// ASCII-only (json.dumps' ensure_ascii), no trailing newline. target_modules keeps c's order
// (PEFT writes a set's arbitrary order; ours is deterministic).
func marshalConfig(c Config) ([]byte, error) {
	f := defaultConfigFile()
	if c.BaseModelNameOrPath != "" {
		f.BaseModelNameOrPath = &c.BaseModelNameOrPath
	}
	f.Bias = c.Bias
	f.FanInFanOut = c.FanInFanOut
	f.InferenceMode = true // PeftModel.save_pretrained sets it before writing
	if c.InitLoraWeights != nil {
		f.InitLoraWeights = c.InitLoraWeights
	}
	f.LoraAlpha = pyNumber(c.LoraAlpha)
	f.LoraDropout = pyFloat(c.LoraDropout)
	if len(c.ModulesToSave) > 0 {
		f.ModulesToSave = c.ModulesToSave
	}
	f.PeftType = c.PeftType
	f.R = c.R
	f.TargetModules = slices.Clone(c.TargetModules)
	f.TaskType = c.TaskType
	f.UseRSLoRA = c.UseRSLoRA

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	return asciiJSON(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// parseConfig reads adapter_config.json: keys absent take PEFT's defaults, unknown keys are
// ignored (as PEFT does for keys from newer releases), and every unsupported setting and
// Validate problem is reported in one error. The Config is returned even with an error so
// that Load can still check the tensors against what is usable.
func parseConfig(b []byte) (Config, error) {
	f := defaultConfigFile()
	if err := json.Unmarshal(b, &f); err != nil {
		return Config{}, err
	}
	c := Config{
		PeftType:        f.PeftType,
		TaskType:        f.TaskType,
		R:               f.R,
		LoraAlpha:       float64(f.LoraAlpha),
		LoraDropout:     float64(f.LoraDropout),
		Bias:            f.Bias,
		FanInFanOut:     f.FanInFanOut,
		InferenceMode:   f.InferenceMode,
		ModulesToSave:   f.ModulesToSave,
		InitLoraWeights: f.InitLoraWeights,
		UseRSLoRA:       f.UseRSLoRA,
	}
	if f.BaseModelNameOrPath != nil {
		c.BaseModelNameOrPath = *f.BaseModelNameOrPath
	}
	var errs []error
	switch t := f.TargetModules.(type) {
	case string:
		if t == "all-linear" { // every linear layer but the output layer: all seven on Llama
			c.TargetModules = slices.Clone(Projections)
		} else {
			errs = append(errs, fmt.Errorf("target_modules %q: a regular expression is not supported; list the projection names", t))
		}
	case []any:
		for _, v := range t {
			s, ok := v.(string)
			if !ok {
				errs = append(errs, fmt.Errorf("target_modules entry %v is not a string", v))
				continue
			}
			c.TargetModules = append(c.TargetModules, s)
		}
	case nil:
	default:
		errs = append(errs, fmt.Errorf("target_modules %v must be a list of names", t))
	}
	errs = append(errs, unsupported(f)...)
	errs = append(errs, c.Validate())
	return c, errors.Join(errs...)
}

// unsupported reports settings outside Config that change which tensors exist or what they
// mean, so that loading or merging such an adapter would silently be wrong.
func unsupported(f configFile) []error {
	var errs []error
	set := func(name string, v any) {
		switch x := v.(type) {
		case nil:
			return
		case bool:
			if !x {
				return
			}
		case []any:
			if len(x) == 0 {
				return
			}
		case map[string]any:
			if len(x) == 0 {
				return
			}
		}
		errs = append(errs, fmt.Errorf("%s %v is not supported", name, v))
	}
	set("alora_invocation_tokens", f.AloraInvocationTokens)
	set("alpha_pattern", f.AlphaPattern)
	set("arrow_config", f.ArrowConfig)
	set("exclude_modules", f.ExcludeModules)
	set("layer_replication", f.LayerReplication)
	set("layers_to_transform", f.LayersToTransform)
	set("lora_bias", f.LoraBias)
	set("rank_pattern", f.RankPattern)
	set("target_parameters", f.TargetParameters)
	set("trainable_token_indices", f.TrainableTokenIndices)
	set("use_bdlora", f.UseBDLoRA)
	set("use_dora", f.UseDoRA)
	set("use_qalora", f.UseQALoRA)
	return errs
}

// pyFloat is a float written as Python's repr writes it: always with a fraction or an
// exponent ("0.0", "0.05", "1e-05"), as json.dumps writes a float field.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	return []byte(pyRepr(float64(f))), nil
}

// pyNumber is a number Python may hold as an int or a float (lora_alpha is annotated int
// but often passed as a float): integral values are written as ints, others as pyFloat.
type pyNumber float64

func (n pyNumber) MarshalJSON() ([]byte, error) {
	v := float64(n)
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.AppendInt(nil, int64(v), 10), nil
	}
	return []byte(pyRepr(v)), nil
}

// pyRepr formats v like Python's float repr: the shortest round-tripping digits, fixed
// notation for 1e-4 <= |v| < 1e16 (with ".0" when integral), scientific otherwise.
func pyRepr(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "null" // json.dumps would write NaN/Infinity, which is not JSON; Validate rejects these
	}
	a := math.Abs(v)
	if a == 0 || (a >= 1e-4 && a < 1e16) {
		s := strconv.FormatFloat(v, 'f', -1, 64)
		if v == math.Trunc(v) {
			s += ".0"
		}
		return s
	}
	return strconv.FormatFloat(v, 'e', -1, 64) // "1e-05", "1.5e+16": Python's spelling too
}

// asciiJSON escapes every non-ASCII character of a JSON text as \uXXXX (UTF-16 surrogate
// pairs beyond the BMP), as Python's json.dumps does by default. Bytes >= 0x80 only occur
// inside strings, so this never touches the structure.
func asciiJSON(b []byte) []byte {
	const hex = "0123456789abcdef"
	var out []byte
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			out = append(out, b[i])
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		esc := func(u rune) {
			out = append(out, '\\', 'u', hex[u>>12&0xf], hex[u>>8&0xf], hex[u>>4&0xf], hex[u&0xf])
		}
		if r >= 0x10000 {
			r -= 0x10000
			esc(0xd800 + r>>10)
			esc(0xdc00 + r&0x3ff)
		} else {
			esc(r)
		}
	}
	return out
}

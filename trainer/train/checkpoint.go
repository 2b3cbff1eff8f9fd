package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// A checkpoint is a directory checkpoints/checkpoint-<step>/ holding what the run needs beyond
// the base model to continue exactly where it was: the adapter (adapter.safetensors, float32),
// the AdamW moments (optimizer.safetensors) and state.json (the step, the logging window, and
// what must not change between the run and its resumption). The data position and the dropout
// seeds are functions of the step (see plan), so they need no state of their own. The base
// weights are not copied: they are re-read from the model directory. With full fine-tuning
// (--full) every weight is trained, so weights.safetensors (float32, Hugging Face names) holds
// all of them in place of adapter.safetensors, and the AdamW moments cover them all.
//
// Saving writes a temporary directory and renames it, so a run killed at any moment leaves
// either the whole checkpoint or none; temporary directories of killed runs are removed by the
// next save.
//
// GoMLX's ml/model/checkpoint is not used: it saves every variable of the store, base weights
// included (hundreds of MB per checkpoint for a 135M model), and restores all of them as
// trainable.
const (
	ckptAdapterFile   = "adapter.safetensors"
	ckptWeightsFile   = "weights.safetensors" // --full: every base weight
	ckptOptimizerFile = "optimizer.safetensors"
	ckptStateFile     = "state.json"
	ckptPrefix        = "checkpoint-"
)

// ckptState is state.json.
type ckptState struct {
	Step       int    `json:"global_step"` // optimizer steps completed
	TotalSteps int    `json:"total_steps"`
	Epoch      int    `json:"epoch"` // epoch of the next step
	Mode       string `json:"mode"`
	// Compat are the settings a resumed run must share with the saved one.
	Compat compat `json:"compat"`
	// Window is the logging window in progress (steps since the last metrics line).
	Window window `json:"window"`
}

// compat lists what fixes the data order, the adapter's shape and the meaning of a step.
type compat struct {
	DataKey       string   `json:"data_key"`
	Seed          int64    `json:"seed"`
	BatchSize     int      `json:"batch_size"`
	GradAccum     int      `json:"grad_accum"`
	Epochs        int      `json:"epochs"`
	PadTo         int      `json:"pad_to"`
	LoRAR         int      `json:"lora_r"`
	TargetModules []string `json:"target_modules"`
	Full          bool     `json:"full,omitempty"` // absent (false) in checkpoints of LoRA runs
}

func compatOf(c Config, dkey string) compat {
	cp := compat{DataKey: dkey, Seed: c.Seed, BatchSize: c.BatchSize, GradAccum: c.GradAccum, Epochs: c.Epochs,
		PadTo: c.PadTo, LoRAR: c.LoRAR, TargetModules: slices.Clone(c.TargetModules), Full: c.Full}
	if c.Full { // no adapter: its settings do not matter
		cp.LoRAR, cp.TargetModules = 0, nil
	}
	return cp
}

// diff names the fields that differ.
func (a compat) diff(b compat) []string {
	var d []string
	if a.DataKey != b.DataKey {
		d = append(d, "data (examples, tokenizer, max_length or max_prompt_length)")
	}
	if a.Full != b.Full {
		d = append(d, fmt.Sprintf("full (checkpoint %v, now %v: a full fine-tuning checkpoint and a LoRA one cannot continue each other)", b.Full, a.Full))
		return d // the adapter settings of one side are meaningless
	}
	for _, x := range []struct {
		name string
		a, b any
	}{{"seed", a.Seed, b.Seed}, {"batch_size", a.BatchSize, b.BatchSize}, {"grad_accum", a.GradAccum, b.GradAccum},
		{"epochs", a.Epochs, b.Epochs}, {"pad_to", a.PadTo, b.PadTo}, {"lora_r", a.LoRAR, b.LoRAR}} {
		if x.a != x.b {
			d = append(d, fmt.Sprintf("%s (checkpoint %v, now %v)", x.name, x.b, x.a))
		}
	}
	if !slices.Equal(a.TargetModules, b.TargetModules) {
		d = append(d, fmt.Sprintf("target_modules (checkpoint %v, now %v)", b.TargetModules, a.TargetModules))
	}
	return d
}

// saveCheckpoint writes checkpoint-<st.Step> under dir and removes all but the newest keep.
func saveCheckpoint(dir string, tv *trainVars, st ckptState, keep int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-"+ckptPrefix)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	params, err := variableTensors(tv.names, tv.params, "")
	if err != nil {
		return "", err
	}
	m, err := variableTensors(tv.names, tv.mom, "exp_avg.")
	if err != nil {
		return "", err
	}
	v, err := variableTensors(tv.names, tv.vel, "exp_avg_sq.")
	if err != nil {
		return "", err
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, tv.paramsFile()), params, nil); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, ckptOptimizerFile), append(m, v...), nil); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := writeJSON(filepath.Join(tmp, ckptStateFile), st); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	final := filepath.Join(dir, fmt.Sprintf("%s%d", ckptPrefix, st.Step))
	if err := os.RemoveAll(final); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	pruneCheckpoints(dir, keep)
	return final, nil
}

// checkpoints lists the complete checkpoints under dir, oldest first.
func checkpoints(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), ckptPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), ckptStateFile)); err == nil {
			steps = append(steps, n)
		}
	}
	slices.Sort(steps)
	return steps, nil
}

// pruneCheckpoints keeps the newest keep checkpoints (all if keep ≤ 0) and removes leftovers of
// interrupted saves.
func pruneCheckpoints(dir string, keep int) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-"+ckptPrefix) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	steps, _ := checkpoints(dir)
	if keep <= 0 || len(steps) <= keep {
		return
	}
	for _, s := range steps[:len(steps)-keep] {
		os.RemoveAll(filepath.Join(dir, fmt.Sprintf("%s%d", ckptPrefix, s)))
	}
}

// loadCheckpoint restores the trained weights (adapter, or all with --full) and AdamW state
// from ckpt into tv and returns its state.
func loadCheckpoint(ckpt string, tv *trainVars) (ckptState, error) {
	var st ckptState
	b, err := os.ReadFile(filepath.Join(ckpt, ckptStateFile))
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("resume: %s: %w", ckpt, err)
	}
	if st.Compat.Full != tv.full {
		return st, fmt.Errorf("resume from %s: the checkpoint is of a %s run, this run is %s; start a fresh run (without --resume) or resume with --full=%v as the checkpoint was made",
			ckpt, runKind(st.Compat.Full), runKind(tv.full), st.Compat.Full)
	}
	params, err := safetensors.ReadFile(filepath.Join(ckpt, tv.paramsFile()))
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	opt, err := safetensors.ReadFile(filepath.Join(ckpt, ckptOptimizerFile))
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	for _, x := range []struct {
		f      *safetensors.File
		prefix string
		vars   []*model.Variable
	}{{params, "", tv.params}, {opt, "exp_avg.", tv.mom}, {opt, "exp_avg_sq.", tv.vel}} {
		if err := setVariables(x.f, x.prefix, tv.names, x.vars); err != nil {
			return st, fmt.Errorf("resume from %s: %w", ckpt, err)
		}
	}
	return st, nil
}

// variableTensors copies float32 variables out as safetensors tensors named prefix+name.
func variableTensors(names []string, vars []*model.Variable, prefix string) ([]safetensors.Tensor, error) {
	out := make([]safetensors.Tensor, len(vars))
	for i, v := range vars {
		val, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", v.Path(), err)
		}
		data := tensors.MustCopyFlatData[float32](val)
		t, err := safetensors.FromFloat32(prefix+names[i], slices.Clone(val.Shape().Dimensions), data, safetensors.F32)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// setVariables sets each variable from tensor prefix+name of f, checking shapes.
func setVariables(f *safetensors.File, prefix string, names []string, vars []*model.Variable) error {
	var errs []error
	for i, v := range vars {
		name := prefix + names[i]
		t, ok := f.Tensors[name]
		if !ok {
			errs = append(errs, fmt.Errorf("missing tensor %s", name))
			continue
		}
		if !slices.Equal(t.Shape, v.Shape().Dimensions) {
			errs = append(errs, fmt.Errorf("tensor %s is %v, want %v", name, t.Shape, v.Shape().Dimensions))
			continue
		}
		data, err := t.Float32s()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(data, t.Shape...)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// paramsFile is the checkpoint file of the trained weights.
func (tv *trainVars) paramsFile() string {
	if tv.full {
		return ckptWeightsFile
	}
	return ckptAdapterFile
}

// runKind names a run's kind for messages.
func runKind(full bool) string {
	if full {
		return "full fine-tuning (--full)"
	}
	return "LoRA"
}

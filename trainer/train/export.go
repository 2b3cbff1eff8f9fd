package train

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
)

// loadBaseWeights puts the base weights into store, frozen: float32, or bfloat16 for
// --dtype bf16 (rounded to nearest even; llama widens them to float32 where they are read,
// so the computation, the adapter and the AdamW state stay float32). The shapes were checked
// by model.LoadModelDir.
func loadBaseWeights(store *model.Store, mc llamacfg.Config, c Config, weights map[string]llama.Weight) error {
	if c.DType != DTypeBF16 {
		return llama.LoadWeights(store, mc, dtypes.Float32, weights)
	}
	for _, s := range llama.ExpectedWeights(mc) {
		w, ok := weights[s.Name]
		if !ok || !slices.Equal(w.Shape, s.Shape) {
			return fmt.Errorf("train: base weight %s missing or mis-shaped", s.Name)
		}
		bf := make([]bfloat16.BFloat16, len(w.Data))
		for i, x := range w.Data {
			bf[i] = bfloat16.FromFloat32(x)
		}
		path := llama.VariablePath(s.Name)
		t := tensors.FromFlatDataAndDimensions(bf, s.Shape...)
		if v := store.GetVariable(path); v != nil {
			if err := v.SetValue(t); err != nil {
				return fmt.Errorf("train: %s: %w", s.Name, err)
			}
			v.Trainable = false
			continue
		}
		v, err := store.CreateVariable(path, t)
		if err != nil {
			return fmt.Errorf("train: %s: %w", s.Name, err)
		}
		v.Trainable = false
	}
	return nil
}

// adapterFromStore reads the trained LoRA factors out of store as a PEFT adapter.
func adapterFromStore(store *model.Store, m *llama.Model, c Config) (*peft.Adapter, error) {
	specs := llama.LoRAWeightSpecs(m.Config, *m.LoRA)
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	w, err := llama.ReadWeights(store, names)
	if err != nil {
		return nil, err
	}
	pc := peft.NewConfig(c.LoRAR, c.LoRAAlpha, c.LoRADropout, c.TargetModules...)
	pc.BaseModelNameOrPath = c.ModelDir
	a := &peft.Adapter{Config: pc, A: map[string][]float32{}, B: map[string][]float32{}}
	for name, t := range w {
		if module, ok := strings.CutSuffix(name, ".lora_A.weight"); ok {
			a.A[module] = t.Data
		} else if module, ok := strings.CutSuffix(name, ".lora_B.weight"); ok {
			a.B[module] = t.Data
		}
	}
	return a, nil
}

// exportAdapter writes adapter_config.json and adapter_model.safetensors into dir.
func exportAdapter(dir string, store *model.Store, m *llama.Model, c Config, mc llamacfg.Config) ([]string, error) {
	a, err := adapterFromStore(store, m, c)
	if err != nil {
		return nil, err
	}
	if err := peft.Save(dir, a, mc); err != nil {
		return nil, err
	}
	return []string{filepath.Join(dir, peft.ConfigFileName), filepath.Join(dir, peft.WeightsFileName)}, nil
}

// writeMerged writes c.MergeOutput: the base model (with the SFT adapter, if any) plus the
// trained adapter merged into its weights, as a Hugging Face model directory with the
// tokenizer, stored in the checkpoint's dtype for bf16 and float32 otherwise.
func writeMerged(c Config, store *model.Store, m *llama.Model) error {
	base, err := loadBase(c)
	if err != nil {
		return err
	}
	a, err := adapterFromStore(store, m, c)
	if err != nil {
		return err
	}
	flat := make(map[string][]float32, len(base.Weights))
	for name, w := range base.Weights {
		flat[name] = w.Data
	}
	if err := peft.Merge(flat, base.Config, a); err != nil {
		return fmt.Errorf("merge_output: %w", err)
	}
	st := safetensors.F32
	if c.DType == DTypeBF16 {
		st = safetensors.BF16
	}
	var out []safetensors.Tensor
	for _, s := range llamacfg.TensorSpecs(base.Config) {
		t, err := safetensors.FromFloat32(s.Name, s.Shape, flat[s.Name], st)
		if err != nil {
			return fmt.Errorf("merge_output: %w", err)
		}
		out = append(out, t)
	}
	mc := base.Config
	mc.TorchDType = ""
	if err := llamacfg.WriteModelDir(c.MergeOutput, mc, out); err != nil {
		return err
	}
	return copyFile(c.tokenizerPath(), filepath.Join(c.MergeOutput, tokenizer.FileName))
}

// exportFull writes the fully fine-tuned model into dir as a Hugging Face model directory:
// config.json (the base's, torch_dtype float32), model.safetensors (every weight, float32, in
// state_dict order) and tokenizer.json (copied from the run's tokenizer), loadable by
// model.LoadModelDir, LoadBase and transformers. It returns the files written.
func exportFull(dir string, store *model.Store, c Config, mc llamacfg.Config) ([]string, error) {
	specs := llamacfg.TensorSpecs(mc)
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	w, err := llama.ReadWeights(store, names)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	out := make([]safetensors.Tensor, len(specs))
	for i, s := range specs {
		if out[i], err = safetensors.FromFloat32(s.Name, s.Shape, w[s.Name].Data, safetensors.F32); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	mc.TorchDType = "" // set from the tensors: float32
	if err := llamacfg.WriteModelDir(dir, mc, out); err != nil {
		return nil, err
	}
	tok := filepath.Join(dir, tokenizer.FileName)
	if err := copyFile(c.tokenizerPath(), tok); err != nil {
		return nil, fmt.Errorf("export: tokenizer: %w", err)
	}
	return []string{filepath.Join(dir, llamacfg.ConfigFileName), filepath.Join(dir, safetensors.SingleFileName), tok}, nil
}

// copyFile copies src to dst (atomically on the destination side).
func copyFile(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, b)
}

package peft

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// Save writes a as a PEFT adapter directory loadable by PeftModel.from_pretrained, vLLM and
// Load: adapter_model.safetensors (the tensors of TensorNames, [r, in] and [out, r], in
// a.DType, default F32, metadata {"format": "pt"} as PEFT writes) and adapter_config.json
// (see marshalConfig). a is checked against mc first, so a mismatched adapter is never
// written. Both files are written atomically (temporary file, then rename), the weights
// first: a directory with a config always has its weights. The bytes are a pure function of
// (a, mc).
func Save(dir string, a *Adapter, mc model.Config) error {
	if err := a.Check(mc); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	dtype := a.DType
	if dtype == "" {
		dtype = safetensors.F32
	}
	if !dtype.Supported() {
		return fmt.Errorf("save adapter %s: unsupported dtype %q (supported: F32, BF16, F16)", dir, dtype)
	}
	cfg, err := marshalConfig(a.Config)
	if err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	r := a.Config.R
	modules := Modules(mc, a.Config.TargetModules)
	tensors := make([]safetensors.Tensor, 0, 2*len(modules))
	for _, m := range modules {
		in, out, _ := ModuleShape(mc, m) // Check validated every module
		nameA, nameB := TensorNames(m)
		ta, err := safetensors.FromFloat32(nameA, []int{r, in}, a.A[m], dtype) // [r, in]
		if err != nil {
			return fmt.Errorf("save adapter %s: %w", dir, err)
		}
		tb, err := safetensors.FromFloat32(nameB, []int{out, r}, a.B[m], dtype) // [out, r]
		if err != nil {
			return fmt.Errorf("save adapter %s: %w", dir, err)
		}
		tensors = append(tensors, ta, tb)
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFileName), tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, ConfigFileName), cfg); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes b to a temporary file beside path, syncs it and renames it over
// path, so a reader sees the old file or the whole new one.
func writeFileAtomic(path string, b []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

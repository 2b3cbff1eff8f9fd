package generate

import (
	"fmt"
	"path/filepath"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/train"
)

// Model names a model to generate with: a base directory, optionally with an SFT adapter
// and a further (e.g. DPO) adapter, both merged into the weights at load so generation runs
// the plain model.
type Model struct {
	ModelDir   string // Hugging Face Llama directory (config.json, model.safetensors, tokenizer.json)
	Tokenizer  string // tokenizer.json; default <ModelDir>/tokenizer.json
	SFTAdapter string // PEFT adapter merged first (optional)
	Adapter    string // PEFT adapter merged on top, e.g. trained_models/<persona>_v1.0 (optional)
	Backend    string // GoMLX backend ("" = $GOMLX_BACKEND or the pure-Go one)
}

// Load reads the model (checked like training's: tensors, tokenizer vocabulary), merges the
// adapters and returns a Generator over it with the hex SHA-256 of every file that
// determines its weights (an identity for caches).
func Load(c Model) (*Generator, string, error) {
	if c.ModelDir == "" {
		return nil, "", fmt.Errorf("generate: no model directory; pass --model_dir")
	}
	base, err := train.LoadBase(c.ModelDir, c.Tokenizer, c.SFTAdapter)
	if err != nil {
		return nil, "", err
	}
	if c.Adapter != "" {
		a, err := peft.Load(c.Adapter, base.Config)
		if err != nil {
			return nil, "", fmt.Errorf("adapter: %w", err)
		}
		flat := make(map[string][]float32, len(base.Weights))
		for name, w := range base.Weights {
			flat[name] = w.Data // shared: Merge updates base.Weights in place
		}
		if err := peft.Merge(flat, base.Config, a); err != nil {
			return nil, "", fmt.Errorf("adapter %s: %w", c.Adapter, err)
		}
		base.Files = append(base.Files, filepath.Join(c.Adapter, peft.ConfigFileName), filepath.Join(c.Adapter, peft.WeightsFileName))
	}
	digest, err := base.Digest()
	if err != nil {
		return nil, "", err
	}
	backend, err := train.NewBackend(c.Backend)
	if err != nil {
		return nil, "", err
	}
	m, err := llama.New(base.Config, dtypes.Float32, nil)
	if err != nil {
		return nil, "", err
	}
	store := model.NewStore()
	if err := llama.LoadWeights(store, base.Config, dtypes.Float32, base.Weights); err != nil {
		return nil, "", err
	}
	g, err := New(backend, store, m, base.Tokenizer)
	if err != nil {
		return nil, "", err
	}
	return g, digest, nil
}

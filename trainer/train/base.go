package train

import (
	"fmt"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// Base is a loaded base model: the checkpoint's weights (float32, Hugging Face names) with an
// SFT adapter merged in, its config and tokenizer. In-process generation (the demo's and the
// evaluation's local generator) loads models through it, exactly as training does.
type Base = baseModel

// LoadBase loads modelDir (config.json + safetensors, checked), the tokenizer (default
// <modelDir>/tokenizer.json; checked against vocab_size) and merges sftAdapter (a PEFT
// directory, optional) into the weights.
func LoadBase(modelDir, tokenizerPath, sftAdapter string) (*Base, error) {
	return loadBase(Config{ModelDir: modelDir, Tokenizer: tokenizerPath, SFTAdapter: sftAdapter})
}

// Digest is the hex SHA-256 of the files that determine the base's weights (model files and
// the SFT adapter): an identity for caches.
func (b *Base) Digest() (string, error) { return filesDigest(b.Files) }

// CheckBase checks, without reading the base weights, what [LoadBase] would load, with the
// same messages: the tokenizer and that it fits config.json's vocab_size, config.json, that a
// weights file is there (model.safetensors or a sharded index), and in full (they are small)
// the SFT adapter and each further adapter against the config. A launcher calls it before
// starting a pipeline whose workers load the model, so that a wrong path fails in seconds
// rather than inside the job.
func CheckBase(modelDir, tokenizerPath, sftAdapter string, adapters ...string) error {
	c := Config{ModelDir: modelDir, Tokenizer: tokenizerPath, SFTAdapter: sftAdapter}
	tok, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	mc, err := model.LoadConfig(modelDir)
	if err != nil {
		return err
	}
	if err := checkVocab(c, tok, mc); err != nil {
		return err
	}
	if _, err := safetensors.WeightsFile(modelDir); err != nil {
		return fmt.Errorf("%w: point --model_dir at a Hugging Face model directory", err)
	}
	if sftAdapter != "" {
		if _, err := peft.Load(sftAdapter, mc); err != nil {
			return fmt.Errorf("sft_adapter: %w", err)
		}
	}
	for _, a := range adapters {
		if _, err := peft.Load(a, mc); err != nil {
			return fmt.Errorf("adapter: %w", err)
		}
	}
	return nil
}

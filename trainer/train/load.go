package train

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
)

// ErrVocabMismatch is returned when the tokenizer has ids the model's embedding cannot hold.
var ErrVocabMismatch = errors.New("tokenizer does not fit the model")

// baseModel is the model training starts from: the checkpoint's weights with the SFT adapter
// (if any) merged in, as float32 host tensors keyed by Hugging Face name.
type baseModel struct {
	Config    model.Config
	Weights   map[string]llama.Weight
	Tokenizer *tokenizer.Tokenizer
	// Files are the inputs that determine the weights, for the reference cache key.
	Files []string
}

// loadBase reads c.ModelDir (config.json + safetensors, checked by model.LoadModelDir), the
// tokenizer (checked against vocab_size) and merges c.SFTAdapter into the weights.
func loadBase(c Config) (*baseModel, error) {
	tok, err := loadTokenizer(c)
	if err != nil {
		return nil, err
	}
	mc, f, err := model.LoadModelDir(c.ModelDir)
	if err != nil {
		return nil, err
	}
	if err := checkVocab(c, tok, mc); err != nil {
		return nil, err
	}
	flat := make(map[string][]float32, len(f.Tensors))
	shapes := make(map[string][]int, len(f.Tensors))
	for name, t := range f.Tensors {
		v, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", c.ModelDir, name, err)
		}
		flat[name], shapes[name] = v, t.Shape
		delete(f.Tensors, name) // release the raw bytes as we go
	}
	files, err := modelFiles(c.ModelDir)
	if err != nil {
		return nil, err
	}
	if c.SFTAdapter != "" {
		a, err := peft.Load(c.SFTAdapter, mc)
		if err != nil {
			return nil, fmt.Errorf("sft_adapter: %w", err)
		}
		if err := peft.Merge(flat, mc, a); err != nil {
			return nil, fmt.Errorf("sft_adapter %s: %w", c.SFTAdapter, err)
		}
		files = append(files, filepath.Join(c.SFTAdapter, peft.ConfigFileName), filepath.Join(c.SFTAdapter, peft.WeightsFileName))
	}
	w := make(map[string]llama.Weight, len(flat))
	for name, v := range flat {
		w[name] = llama.Weight{Shape: shapes[name], Data: v}
	}
	return &baseModel{Config: mc, Weights: w, Tokenizer: tok, Files: files}, nil
}

// modelFiles lists the files of a model directory that determine its weights.
func modelFiles(dir string) ([]string, error) {
	files := []string{filepath.Join(dir, model.ConfigFileName)}
	weights, err := safetensors.WeightsFile(dir)
	if err != nil {
		return nil, err
	}
	if filepath.Base(weights) == safetensors.SingleFileName {
		return append(files, weights), nil
	}
	shards, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return nil, err
	}
	slices.Sort(shards)
	return append(append(files, weights), shards...), nil
}

// hashFiles adds the name and contents of each file to h.
func hashFiles(h io.Writer, files []string) error {
	for _, p := range files {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00", filepath.Base(p))
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("hash %s: %w", p, err)
		}
	}
	return nil
}

// filesDigest is the hex SHA-256 of hashFiles.
func filesDigest(files []string) (string, error) {
	h := sha256.New()
	if err := hashFiles(h, files); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// padID is the id padding uses: <|pad|> when the tokenizer has it, else 0. Padding is masked,
// so the choice only matters for readability of dumps.
func padID(tok *tokenizer.Tokenizer) int32 {
	if id, ok := tok.TokenID("<|pad|>"); ok {
		return int32(id)
	}
	return 0
}

// loadTokenizer loads c's tokenizer (default <model_dir>/tokenizer.json).
func loadTokenizer(c Config) (*tokenizer.Tokenizer, error) {
	tok, err := tokenizer.Load(c.tokenizerPath())
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w (pass --tokenizer or put tokenizer.json in the model directory)", err)
	}
	return tok, nil
}

// checkVocab checks that every id of tok is a row of the model's embedding.
func checkVocab(c Config, tok *tokenizer.Tokenizer, mc model.Config) error {
	if tok.VocabSize() > mc.VocabSize {
		return fmt.Errorf("%w: %s has %d token ids but %s/config.json has vocab_size %d; use the tokenizer the model was made with, or re-create the model with `trainer init --vocab %s`",
			ErrVocabMismatch, c.tokenizerPath(), tok.VocabSize(), c.ModelDir, mc.VocabSize, c.tokenizerPath())
	}
	return nil
}

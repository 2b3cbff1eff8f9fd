package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/data"
	"github.com/pantrypilot/recipe-dpo/trainer/llama"
)

// refLogps maps an example id to the reference policy's summed completion log-probs of its
// chosen and rejected completions.
type refLogps map[string][2]float32

// refCacheFile is the on-disk form of the cache.
type refCacheFile struct {
	Key    string   `json:"key"`
	Model  string   `json:"model_dir"`
	Data   string   `json:"data_key"`
	Logps  refLogps `json:"logps"`
	Format int      `json:"format"`
}

// refCacheKey identifies the reference log-probs of a data set: the base model's weight files
// and SFT adapter (contents), the tokenized examples (which fold in the data, the tokenizer,
// max_length and max_prompt_length) and the base dtype.
func refCacheKey(base *baseModel, dkey string, c Config) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "ref-logps v1\x00dtype=%s\x00data=%s\x00", c.DType, dkey)
	if err := hashFiles(h, base.Files); err != nil {
		return "", fmt.Errorf("reference cache key: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// loadRefCache returns the cached log-probs for key, or nil if there are none (or they do not
// cover exs).
func loadRefCache(dir, key string, exs []data.Example) (refLogps, error) {
	b, err := os.ReadFile(filepath.Join(dir, key+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reference cache: %w", err)
	}
	var f refCacheFile
	if err := json.Unmarshal(b, &f); err != nil || f.Key != key {
		return nil, nil // a corrupt or foreign file: recompute and overwrite it
	}
	for _, e := range exs {
		if _, ok := f.Logps[e.ID]; !ok {
			return nil, nil
		}
	}
	return f.Logps, nil
}

// saveRefCache writes the cache file for key atomically.
func saveRefCache(dir, key string, c Config, dkey string, ref refLogps) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("reference cache: %w", err)
	}
	f := refCacheFile{Key: key, Model: c.ModelDir, Data: dkey, Logps: ref, Format: 1}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, key+".json"), b)
}

// computeRefLogps runs the reference policy (the base with the adapter off, no dropout; exec
// is newRefExec's) over every example once, batch by batch in length-sorted order.
func computeRefLogps(exec *model.Exec, exs []data.Example, c Config, pad int32) (refLogps, error) {
	ref := make(refLogps, len(exs))
	for _, b := range data.Batches(exs, batchOptions(c, pad), -1) {
		outs, err := exec.Exec(batchTensors(b)...)
		if err != nil {
			return nil, fmt.Errorf("reference log-probs: %w", outOfMemory(err, c, b))
		}
		lp := tensors.MustCopyFlatData[float32](outs[0]) // [2B]: chosen rows, then rejected
		n := len(b.IDs)
		for i, id := range b.IDs {
			ref[id] = [2]float32{lp[i], lp[n+i]}
		}
	}
	return ref, nil
}

// newRefExec compiles the reference pass: the sequence log-probs of m with the adapter off.
func newRefExec(backend compute.Backend, store *model.Store, m *llama.Model) (*model.Exec, error) {
	exec, err := llama.NewSequenceLogProbsExec(backend, store, m, llama.AdapterOff)
	if err != nil {
		return nil, err
	}
	return exec.SetMaxCache(-1), nil // one graph per batch shape (see newMicroStep)
}

// refTensors are the cached reference log-probs of a batch: chosen [B] and rejected [B].
func refTensors(ref refLogps, b data.Batch) []any {
	chosen, rejected := make([]float32, len(b.IDs)), make([]float32, len(b.IDs))
	for i, id := range b.IDs {
		chosen[i], rejected[i] = ref[id][0], ref[id][1]
	}
	return []any{tensors.FromValue(chosen), tensors.FromValue(rejected)}
}

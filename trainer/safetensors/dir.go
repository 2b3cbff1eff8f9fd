package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// File names of a Hugging Face model directory.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// Index is model.safetensors.index.json: which shard file holds each tensor.
type Index struct {
	Metadata  map[string]any    `json:"metadata,omitempty"` // e.g. {"total_size": bytes}; not checked
	WeightMap map[string]string `json:"weight_map"`
}

// WeightsFile is the path of the weights file of Hugging Face model directory dir that
// [ReadModelDir] reads: model.safetensors if present (transformers prefers it too), otherwise
// model.safetensors.index.json. It is an error if there is neither. Nothing is read.
func WeightsFile(dir string) (string, error) {
	for _, name := range []string{SingleFileName, IndexFileName} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("safetensors: %w", err)
		}
	}
	return "", fmt.Errorf("safetensors: %s has neither %s nor %s", dir, SingleFileName, IndexFileName)
}

// ReadModelDir reads the weights of a Hugging Face model directory: model.safetensors if
// present (transformers prefers it too), otherwise the shards named by
// model.safetensors.index.json, merged into one File. For a sharded checkpoint it is an
// error if a shard is missing or unreadable, if a weight_map entry is absent from its shard,
// or if a shard holds a tensor the weight_map does not assign to it. Metadata is the union
// of the shards' "__metadata__" (the first shard in sorted file order wins a conflict); the
// index's own metadata (total_size) is not checked.
func ReadModelDir(dir string) (*File, error) {
	indexPath, err := WeightsFile(dir)
	if err != nil {
		return nil, err
	}
	if filepath.Base(indexPath) == SingleFileName {
		return ReadFile(indexPath)
	}
	b, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: weight_map is empty", indexPath)
	}

	byShard := map[string][]string{}
	for name, shard := range idx.WeightMap {
		// A shard must be a plain file inside dir: an index is data, not a licence to read
		// arbitrary paths.
		if shard == "" || shard != filepath.Base(shard) || shard == "." || shard == ".." || strings.ContainsRune(shard, '\\') {
			return nil, fmt.Errorf("%s: tensor %q maps to %q, which is not a file name in the model directory", indexPath, name, shard)
		}
		byShard[shard] = append(byShard[shard], name)
	}
	shards := make([]string, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	slices.Sort(shards)

	out := &File{Tensors: make(map[string]Tensor, len(idx.WeightMap)), Metadata: map[string]string{}}
	for _, shard := range shards {
		f, err := ReadFile(filepath.Join(dir, shard))
		if err != nil {
			return nil, fmt.Errorf("shard %s listed in %s: %w", shard, IndexFileName, err)
		}
		want := byShard[shard]
		slices.Sort(want)
		var missing []string
		for _, name := range want {
			t, ok := f.Tensors[name]
			if !ok {
				missing = append(missing, name)
				continue
			}
			out.Tensors[name] = t
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("safetensors: %s maps %d tensors to %s that it does not contain: %v", IndexFileName, len(missing), shard, missing)
		}
		var extra []string
		for _, name := range f.Names() {
			if idx.WeightMap[name] != shard {
				extra = append(extra, name)
			}
		}
		if len(extra) > 0 {
			return nil, fmt.Errorf("safetensors: %s holds tensors that %s does not assign to it: %v", shard, IndexFileName, extra)
		}
		for k, v := range f.Metadata {
			if _, ok := out.Metadata[k]; !ok {
				out.Metadata[k] = v
			}
		}
	}
	return out, nil
}

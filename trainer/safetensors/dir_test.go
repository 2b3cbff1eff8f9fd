package safetensors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeSharded writes a two-shard checkpoint the way transformers' save_pretrained does and
// returns its directory.
func writeSharded(t *testing.T, weightMap map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	shard1 := "model-00001-of-00002.safetensors"
	shard2 := "model-00002-of-00002.safetensors"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(WriteFile(filepath.Join(dir, shard1), []Tensor{
		mustFromFloat32(t, "model.embed_tokens.weight", []int{2, 2}, []float32{1, 2, 3, 4}, BF16),
		mustFromFloat32(t, "model.layers.0.input_layernorm.weight", []int{2}, []float32{1, 1}, BF16),
	}, map[string]string{"format": "pt"}))
	must(WriteFile(filepath.Join(dir, shard2), []Tensor{
		mustFromFloat32(t, "model.norm.weight", []int{2}, []float32{0.5, 0.25}, BF16),
	}, map[string]string{"format": "pt", "extra": "x"}))
	if weightMap == nil {
		weightMap = map[string]string{
			"model.embed_tokens.weight":             shard1,
			"model.layers.0.input_layernorm.weight": shard1,
			"model.norm.weight":                     shard2,
		}
	}
	idx, err := json.Marshal(Index{Metadata: map[string]any{"total_size": 12}, WeightMap: weightMap})
	must(err)
	must(os.WriteFile(filepath.Join(dir, IndexFileName), idx, 0o644))
	return dir
}

func TestReadModelDirSharded(t *testing.T) {
	dir := writeSharded(t, nil)
	f, err := ReadModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.norm.weight"}
	if got := f.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	checkValues(t, f.Tensors["model.norm.weight"], BF16, []int{2}, []float32{0.5, 0.25})
	checkValues(t, f.Tensors["model.embed_tokens.weight"], BF16, []int{2, 2}, []float32{1, 2, 3, 4})
	if want := map[string]string{"format": "pt", "extra": "x"}; !reflect.DeepEqual(f.Metadata, want) {
		t.Errorf("Metadata = %v, want %v", f.Metadata, want)
	}
}

func TestReadModelDirPrefersSingleFile(t *testing.T) {
	dir := writeSharded(t, nil)
	single := []Tensor{mustFromFloat32(t, "only", []int{1}, []float32{9}, F32)}
	if err := WriteFile(filepath.Join(dir, SingleFileName), single, nil); err != nil {
		t.Fatal(err)
	}
	f, err := ReadModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Names(); !reflect.DeepEqual(got, []string{"only"}) {
		t.Errorf("Names() = %v, want [only]", got)
	}
}

func TestReadModelDirErrors(t *testing.T) {
	s1, s2 := "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	tests := []struct {
		name      string
		weightMap map[string]string
		setup     func(dir string)
		want      string
	}{
		{
			name: "weight_map entry missing from its shard",
			weightMap: map[string]string{
				"model.embed_tokens.weight": s1, "model.layers.0.input_layernorm.weight": s1,
				"model.norm.weight": s2, "lm_head.weight": s2,
			},
			want: "maps 1 tensors to " + s2 + " that it does not contain: [lm_head.weight]",
		},
		{
			name: "tensor in the wrong shard",
			weightMap: map[string]string{
				"model.embed_tokens.weight": s1, "model.layers.0.input_layernorm.weight": s1,
				"model.norm.weight": s1,
			},
			want: "maps 1 tensors to " + s1 + " that it does not contain: [model.norm.weight]",
		},
		{
			name: "shard tensor not in weight_map",
			weightMap: map[string]string{
				"model.embed_tokens.weight": s1, "model.norm.weight": s2,
			},
			want: s1 + " holds tensors that " + IndexFileName + " does not assign to it: [model.layers.0.input_layernorm.weight]",
		},
		{
			name:  "missing shard",
			setup: func(dir string) { os.Remove(filepath.Join(dir, s2)) },
			want:  "shard " + s2 + " listed in " + IndexFileName,
		},
		{
			name:  "corrupt shard",
			setup: func(dir string) { os.WriteFile(filepath.Join(dir, s2), []byte("garbage!garbage!"), 0o644) },
			want:  "shard " + s2,
		},
		{
			name:      "path outside the directory",
			weightMap: map[string]string{"x": "../" + s1},
			want:      `tensor "x" maps to "../` + s1 + `", which is not a file name in the model directory`,
		},
		{
			name:      "empty weight_map",
			weightMap: map[string]string{},
			want:      "weight_map is empty",
		},
		{
			name:  "bad index JSON",
			setup: func(dir string) { os.WriteFile(filepath.Join(dir, IndexFileName), []byte("{"), 0o644) },
			want:  IndexFileName,
		},
		{
			name: "no weights at all",
			setup: func(dir string) {
				os.Remove(filepath.Join(dir, IndexFileName))
			},
			want: "has neither model.safetensors nor model.safetensors.index.json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeSharded(t, tt.weightMap)
			if tt.setup != nil {
				tt.setup(dir)
			}
			_, err := ReadModelDir(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadModelDir error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

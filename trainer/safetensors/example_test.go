package safetensors_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

func Example() {
	dir, err := os.MkdirTemp("", "safetensors-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	w, err := safetensors.FromFloat32("model.norm.weight", []int{4}, []float32{1, 0.5, -2, 3.140625}, safetensors.BF16)
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "model.safetensors")
	if err := safetensors.WriteFile(path, []safetensors.Tensor{w}, map[string]string{"format": "pt"}); err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	t := f.Tensors["model.norm.weight"]
	vals, err := t.Float32s()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.DType, t.Shape, vals, f.Metadata)
	// Output: BF16 [4] [1 0.5 -2 3.140625] map[format:pt]
}

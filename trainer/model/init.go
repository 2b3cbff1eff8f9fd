package model

import (
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// InitStdDev is the standard deviation of the random initialization of linear and embedding
// weights: transformers' LlamaConfig default initializer_range, which every Llama
// config.json we use keeps (Config does not carry the field).
const InitStdDev = 0.02

// InitRandom returns freshly initialized weights for c, one tensor per TensorSpecs entry in
// that order, as transformers' LlamaPreTrainedModel._init_weights does: linear and embedding
// weights ~ Normal(0, InitStdDev), RMSNorm weights = 1. (transformers also zeroes the
// embedding row of pad_token_id; Llama configs have none.)
//
// The result is a pure function of (c, seed, dtype): each tensor draws from its own PCG
// stream seeded with seed and a hash of its name, so tensors are generated in parallel and a
// tensor's values do not depend on which other tensors the config has (adding a layer leaves
// the existing layers' values unchanged). Values are drawn as float32 and rounded to dtype.
// Reproducibility is per Go release: PCG is a fixed algorithm, but the Go project does not
// promise NormFloat64 will map its output to normals the same way forever.
// It panics on a dtype safetensors does not support: that is a programming error.
func InitRandom(c Config, seed int64, dtype safetensors.DType) []safetensors.Tensor {
	if !dtype.Supported() {
		panic("model.InitRandom: unsupported dtype " + string(dtype))
	}
	specs := TensorSpecs(c)
	out := make([]safetensors.Tensor, len(specs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, s := range specs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = initTensor(s, seed, dtype)
		}()
	}
	wg.Wait()
	return out
}

// initTensor draws one tensor: ones for 1-D (RMSNorm) weights, Normal(0, InitStdDev) for
// the 2-D linear and embedding weights.
func initTensor(s TensorSpec, seed int64, dtype safetensors.DType) safetensors.Tensor {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	vals := make([]float32, n)
	if len(s.Shape) == 1 {
		for j := range vals {
			vals[j] = 1
		}
	} else {
		h := fnv.New64a()
		h.Write([]byte(s.Name))
		rng := rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
		for j := range vals {
			vals[j] = float32(rng.NormFloat64() * InitStdDev)
		}
	}
	t, err := safetensors.FromFloat32(s.Name, s.Shape, vals, dtype)
	if err != nil {
		panic("model.InitRandom: " + err.Error()) // shapes come from TensorSpecs; cannot happen
	}
	return t
}

package generate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
)

// BenchmarkGenerate times greedy generation of 64 tokens for 4 prompts of 32 tokens on a small
// model (hidden 256, 4 layers, 8 heads / 4 kv heads, vocabulary 2048, LoRA r=8 on), with the
// KV cache (one prefill + 63 one-token steps) and by full recomputation (64 forward passes of
// the padded [4, 96] sequence through llama's Logits, argmax on the host). It reports both
// throughputs in generated tokens/s and their ratio; it asserts nothing about timings.
func BenchmarkGenerate(b *testing.B) {
	cfg := llamacfg.Config{
		ModelType: "llama", HiddenSize: 256, NumHiddenLayers: 4, NumAttentionHeads: 8, NumKeyValueHeads: 4,
		IntermediateSize: 688, VocabSize: 2048, RMSNormEps: 1e-5, RopeTheta: 500000, MaxPositionEmbeddings: 2048,
		RopeScaling: &llamacfg.RopeScaling{RopeType: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192},
	}
	const batch, promptLen, newTokens = 4, 32, 64
	lora := llama.DefaultLoRAConfig()
	m, err := llama.New(cfg, dtypes.Float32, &lora)
	if err != nil {
		b.Fatal(err)
	}
	store := model.NewStore()
	if err := llama.InitWeights(store, cfg, dtypes.Float32, 1); err != nil {
		b.Fatal(err)
	}
	if err := llama.AddLoRA(store, m, 2); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	prompts := make([]string, batch)
	ids := make([][]int, batch)
	for i := range prompts {
		for range promptLen {
			ids[i] = append(ids[i], rng.IntN(cfg.VocabSize))
		}
		prompts[i] = prompt(ids[i]...)
	}

	g, err := New(backend(b), store, m, fakeTokenizer{})
	if err != nil {
		b.Fatal(err)
	}
	o := Options{MaxNewTokens: newTokens, Adapter: llama.AdapterOn}
	cached := func() []Result {
		res, err := g.Generate(context.Background(), prompts, o)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}

	exec, err := llama.NewLogitsExec(backend(b), store, m, llama.AdapterOn)
	if err != nil {
		b.Fatal(err)
	}
	seqLen := promptLen + newTokens
	full := func() [][]int {
		out := make([][]int, batch)
		seqs := make([]int32, batch*seqLen)
		mask := make([]int32, batch*seqLen)
		for i := range ids {
			for j, id := range ids[i] {
				seqs[i*seqLen+j], mask[i*seqLen+j] = int32(id), 1
			}
		}
		for step := range newTokens {
			res := exec.MustCall(tensors.FromFlatDataAndDimensions(seqs, batch, seqLen), tensors.FromFlatDataAndDimensions(mask, batch, seqLen))
			logits := tensors.MustCopyFlatData[float32](res[0]) // [B, S, V]
			pos := promptLen + step - 1
			for i := range batch {
				tok := argmax(logits[(i*seqLen+pos)*cfg.VocabSize : (i*seqLen+pos+1)*cfg.VocabSize])
				out[i] = append(out[i], tok)
				seqs[i*seqLen+pos+1], mask[i*seqLen+pos+1] = int32(tok), 1
			}
		}
		return out
	}

	// Compile both, and check they agree while at it.
	want, got := full(), cached()
	for i := range want {
		if fmt.Sprint(want[i]) != fmt.Sprint(got[i].Tokens) {
			b.Logf("row %d: cached %v, full %v (near-tied logits of the random model?)", i, got[i].Tokens, want[i])
		}
	}
	var tCached, tFull time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		cached()
		tCached += time.Since(start)
		start = time.Now()
		full()
		tFull += time.Since(start)
	}
	tokens := float64(b.N * batch * newTokens)
	b.ReportMetric(tokens/tCached.Seconds(), "cached-tokens/s")
	b.ReportMetric(tokens/tFull.Seconds(), "full-tokens/s")
	b.ReportMetric(tFull.Seconds()/tCached.Seconds(), "speedup")
}

package llama

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
)

// BenchmarkDPOTrainStep times one LoRA-DPO optimizer step (policy forward + backward, reference
// forward, AdamW) on a small model: hidden 256, 4 layers, 8 heads / 4 kv heads, vocabulary
// 2048; 4 pairs × 2 sequences × 128 tokens = 1024 tokens per step.
func BenchmarkDPOTrainStep(b *testing.B) {
	cfg := llamacfg.Config{
		ModelType: "llama", HiddenSize: 256, NumHiddenLayers: 4, NumAttentionHeads: 8, NumKeyValueHeads: 4,
		IntermediateSize: 688, VocabSize: 2048, RMSNormEps: 1e-5, RopeTheta: 500000, MaxPositionEmbeddings: 2048,
		RopeScaling: &llamacfg.RopeScaling{RopeType: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192},
	}
	const pairs, seqLen = 4, 128
	lora := DefaultLoRAConfig()
	m, err := New(cfg, dtypes.Float32, &lora)
	if err != nil {
		b.Fatal(err)
	}
	store := model.NewStore()
	if err := InitWeights(store, cfg, dtypes.Float32, 1); err != nil {
		b.Fatal(err)
	}
	if err := AddLoRA(store, m, 2); err != nil {
		b.Fatal(err)
	}
	step, err := NewDPOTrainStep(backend(b), store, m, DefaultDPOConfig(), optimizer.Adam().LearningRate(1e-4).Done())
	if err != nil {
		b.Fatal(err)
	}
	batch := preferenceBatch(rand.New(rand.NewPCG(1, 1)), pairs, seqLen, 32, cfg.VocabSize, 5, 6)
	step.MustCall(batch.args()...) // compile
	b.ResetTimer()
	for b.Loop() {
		step.MustCall(batch.args()...)
	}
	b.ReportMetric(float64(b.N*2*pairs*seqLen)/b.Elapsed().Seconds(), "tokens/s")
}

package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/data"
	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// Benchmarks report; they assert nothing. Run with
//
//	go test -tags noxla -run '^$' -bench . -benchtime 1x ./trainer/train/

// benchShapes are the model shapes of BenchmarkDPOStep.
var benchShapes = []struct {
	name string
	cfg  llamacfg.Config
}{
	{"tiny", llamacfg.Config{ModelType: "llama", HiddenSize: 64, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		IntermediateSize: 176, VocabSize: 512, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 1024, TieWordEmbeddings: true}},
	// SmolLM-135M: 30 layers, hidden 576, 9 heads over 3 key/value heads, MLP 1536, vocab 49152, tied.
	{"smollm135m", llamacfg.Config{ModelType: "llama", HiddenSize: 576, NumHiddenLayers: 30, NumAttentionHeads: 9, NumKeyValueHeads: 3,
		IntermediateSize: 1536, VocabSize: 49152, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 2048, TieWordEmbeddings: true}},
}

// forwardFLOPs is the matmul work of one forward pass over n sequences of s tokens: 2 per
// multiply-add of every projection and the LM head, plus QKᵀ and PV over the full s×s scores
// (the graph computes them all and masks).
func forwardFLOPs(c llamacfg.Config, n, s int) float64 {
	h, kv := float64(c.HiddenSize), float64(c.NumKeyValueHeads*c.HeadDimension())
	q := float64(c.NumAttentionHeads * c.HeadDimension())
	perToken := 2 * (h*q + 2*h*kv + q*h + 3*h*float64(c.IntermediateSize)) // projections of one layer
	attn := 2 * 2 * float64(s) * q                                         // QKᵀ and PV per token
	layers := float64(c.NumHiddenLayers) * (perToken + attn)
	head := 2 * h * float64(c.VocabSize)
	return float64(n*s) * (layers + head)
}

// matmulGFLOPs measures the backend's float32 matmul speed on an [m, k]·[k, n] product: the
// best of a few runs after a warm-up.
func matmulGFLOPs(b *testing.B, m, k, n int) float64 {
	exec, err := graph.NewExec(backend(b), func(x, y *graph.Node) *graph.Node { return graph.MatMul(x, y) })
	if err != nil {
		b.Fatal(err)
	}
	defer exec.Finalize()
	x := tensors.FromShape(shapes.Make(dtypes.Float32, m, k))
	y := tensors.FromShape(shapes.Make(dtypes.Float32, k, n))
	best := time.Duration(1 << 62)
	for range 4 {
		t0 := time.Now()
		if _, err := exec.Exec(x, y); err != nil {
			b.Fatal(err)
		}
		best = min(best, time.Since(t0))
	}
	return 2 * float64(m) * float64(k) * float64(n) / best.Seconds() / 1e9
}

// stepHeap runs step once more with the garbage collector at GOGC=10, so that the Go heap in
// use stays close to the live memory (weights, optimizer state, the step's activations and
// buffers; at the default GOGC it also holds up to as much again of garbage, which hid the
// difference gradient checkpointing makes), and returns its peak in MiB.
func stepHeap(step func()) float64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	stop := peakHeap()
	step()
	return stop()
}

// peakHeap samples the Go heap until stop is called and returns the peak in MiB.
func peakHeap() (stop func() float64) {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		peak = max(peak, ms.HeapInuse)
		mu.Unlock()
	}
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() float64 {
		close(done)
		sample()
		mu.Lock()
		defer mu.Unlock()
		return float64(peak) / (1 << 20)
	}
}

// randomBatch is pairs pairs of seq tokens (prompt a quarter of it) in the concatenated layout.
func randomBatch(rng *rand.Rand, pairs, seq, vocab int) data.Batch {
	b := data.Batch{Seq: seq}
	for r := range 2 * pairs {
		tok, att, comp := make([]int32, seq), make([]int32, seq), make([]int32, seq)
		for t := range seq {
			tok[t], att[t] = int32(rng.IntN(vocab)), 1
			if t >= seq/4 {
				comp[t] = 1
			}
		}
		if r < pairs {
			b.IDs = append(b.IDs, fmt.Sprint(r))
		}
		b.Tokens, b.Attention, b.Completion = append(b.Tokens, tok), append(b.Attention, att), append(b.Completion, comp)
		b.Real += seq
	}
	return b
}

// BenchmarkDPOStep times one LoRA-DPO optimizer step (policy forward + backward, reference
// forward in the same graph, AdamW) at sequence length 256 and reports tokens/s, the achieved
// GFLOP/s (3 forward passes' matmul work: policy forward, its backward to the activations,
// reference forward) and its ratio to a plain matmul's GFLOP/s measured in the same run, and
// the peak Go heap of a step ([stepHeap]). smollm135m_checkpointing is the 135M shape with
// gradient checkpointing: its GFLOP/s still count three forward passes, though it runs the
// policy's forward twice.
func BenchmarkDPOStep(b *testing.B) {
	const seq = 256
	type variant struct {
		name          string
		cfg           llamacfg.Config
		checkpointing bool
	}
	variants := []variant{{benchShapes[0].name, benchShapes[0].cfg, false}, {benchShapes[1].name, benchShapes[1].cfg, false},
		{benchShapes[1].name + "_checkpointing", benchShapes[1].cfg, true}}
	for _, shape := range variants {
		b.Run(shape.name, func(b *testing.B) {
			pairs := 4
			if strings.HasPrefix(shape.name, "smollm135m") {
				pairs = 1
			}
			c := DefaultConfig()
			c.RefCache = false
			lora := c.loraConfig()
			m, err := llama.New(shape.cfg, dtypes.Float32, &lora)
			if err != nil {
				b.Fatal(err)
			}
			m.GradientCheckpointing = shape.checkpointing
			store := model.NewStore()
			if err := llama.InitWeights(store, shape.cfg, dtypes.Float32, 1); err != nil {
				b.Fatal(err)
			}
			if err := llama.AddLoRA(store, m, 2); err != nil {
				b.Fatal(err)
			}
			tv, err := newTrainVars(store, m)
			if err != nil {
				b.Fatal(err)
			}
			hostMasks := hostDropout(backend(b), m)
			micro, err := newMicroStep(backend(b), store, m, c, tv, hostMasks)
			if err != nil {
				b.Fatal(err)
			}
			apply, err := newApplyStep(backend(b), store, c, tv)
			if err != nil {
				b.Fatal(err)
			}
			batch := randomBatch(rand.New(rand.NewPCG(1, 1)), pairs, seq, shape.cfg.VocabSize)
			step := func() {
				args := append(batchTensors(batch), scalarF32(1))
				if hostMasks { // drawn in every step, as the trainer does
					args = append(args, dropoutMasks(m, batch, 1)...)
				}
				if _, err := micro.Exec(args...); err != nil {
					b.Fatal(err)
				}
				if _, err := apply.Exec(scalarF32(1e-4), float32(0.1), float32(0.001)); err != nil {
					b.Fatal(err)
				}
			}
			t0 := time.Now()
			step() // compiles
			compile := time.Since(t0)
			b.ResetTimer()
			for b.Loop() {
				step()
			}
			perStep := b.Elapsed().Seconds() / float64(b.N)
			b.StopTimer()
			peak := stepHeap(step)
			tokens := 2 * pairs * seq
			flops := 3 * forwardFLOPs(shape.cfg, 2*pairs, seq)
			achieved := flops / perStep / 1e9
			mm := matmulGFLOPs(b, tokens, shape.cfg.HiddenSize, shape.cfg.IntermediateSize)
			b.ReportMetric(float64(tokens)/perStep, "tokens/s")
			b.ReportMetric(achieved, "GFLOP/s")
			b.ReportMetric(mm, "matmul_GFLOP/s")
			b.ReportMetric(100*achieved/mm, "%_of_matmul")
			b.ReportMetric(peak, "peak_heap_MiB")
			b.Logf("%s: %d tokens/step, %.3f s/step (first call with compilation %.2f s), %.1f GFLOP/step; achieved %.1f GFLOP/s vs matmul [%d,%d]·[%d,%d] %.1f GFLOP/s = %.0f%%; peak heap %.0f MiB",
				shape.name, tokens, perStep, compile.Seconds(), flops/1e9, achieved, tokens, shape.cfg.HiddenSize, shape.cfg.HiddenSize, shape.cfg.IntermediateSize, mm, 100*achieved/mm, peak)
		})
	}
}

// demoShape is the demo's tiny SFT model: hidden 128, 4 layers, 4 heads over 2 key/value
// heads, MLP 384, vocabulary 1024.
var demoShape = llamacfg.Config{ModelType: "llama", HiddenSize: 128, NumHiddenLayers: 4, NumAttentionHeads: 4, NumKeyValueHeads: 2,
	IntermediateSize: 384, VocabSize: 1024, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 1024, TieWordEmbeddings: true}

// BenchmarkFullSFTStep times one optimizer step of full fine-tuning in sft mode (--full) on
// the demo's model shape at sequence length 256 with 16 sequences per step, as one micro-batch
// of 16 and as 4 accumulated micro-batches of 4 (the default batch_size 4 × grad_accum 4), and
// reports tokens/s (every token real; padding in real data lowers the real-token rate), the
// achieved GFLOP/s (forward + backward ≈ 3 forward passes' matmul work) and the peak Go heap.
func BenchmarkFullSFTStep(b *testing.B) {
	const seq, perStep = 256, 16
	for _, micro := range []int{16, 4} {
		b.Run(fmt.Sprintf("batch%dx%d", micro, perStep/micro), func(b *testing.B) {
			c := DefaultConfig()
			c.Mode, c.Full, c.WeightDecay = ModeSFT, true, 0.1
			m, err := llama.New(demoShape, dtypes.Float32, nil)
			if err != nil {
				b.Fatal(err)
			}
			m.TrainBase = true
			store := model.NewStore()
			if err := llama.InitWeights(store, demoShape, dtypes.Float32, 1); err != nil {
				b.Fatal(err)
			}
			tv, err := newTrainVars(store, m)
			if err != nil {
				b.Fatal(err)
			}
			microExec, err := newMicroStep(backend(b), store, m, c, tv, false) // no adapter, no dropout
			if err != nil {
				b.Fatal(err)
			}
			apply, err := newApplyStep(backend(b), store, c, tv)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			batches := make([]data.Batch, perStep/micro)
			for i := range batches {
				// randomBatch makes 2·pairs rows; sft uses them all as sequences.
				batches[i] = randomBatch(rng, micro/2, seq, demoShape.VocabSize)
			}
			w := scalarF32(1 / float64(len(batches)))
			step := func() {
				for _, bt := range batches {
					if _, err := microExec.Exec(append(batchTensors(bt), w)...); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := apply.Exec(scalarF32(1e-4), float32(0.1), float32(0.001)); err != nil {
					b.Fatal(err)
				}
			}
			t0 := time.Now()
			step() // compiles
			compile := time.Since(t0)
			b.ResetTimer()
			for b.Loop() {
				step()
			}
			perStepSec := b.Elapsed().Seconds() / float64(b.N)
			b.StopTimer()
			peak := stepHeap(step)
			tokens := perStep * seq
			flops := 3 * forwardFLOPs(demoShape, perStep, seq)
			b.ReportMetric(float64(tokens)/perStepSec, "tokens/s")
			b.ReportMetric(flops/perStepSec/1e9, "GFLOP/s")
			b.ReportMetric(peak, "peak_heap_MiB")
			b.Logf("full sft, %d×%d sequences of %d: %d tokens/step, %.3f s/step (first step with compilation %.2f s), %.0f tokens/s, %.1f GFLOP/s, %d parameters, peak heap %.0f MiB",
				len(batches), micro, seq, tokens, perStepSec, compile.Seconds(), float64(tokens)/perStepSec, flops/perStepSec/1e9,
				llamacfg.NumParameters(demoShape), peak)
		})
	}
}

// refCacheShapes are the model shapes and run sizes of BenchmarkRefCacheEpoch: a small model
// (hidden 256, 4 layers) whose epochs are short enough for many samples, and the
// SmolLM-135M shape of BenchmarkDPOStep, where the matmuls dominate as they do in production
// (Llama 3.2 3B) and each step takes seconds.
var refCacheShapes = []struct {
	name                   string
	cfg                    llamacfg.Config
	pairs, batch, accum    int
	epochs, runs           int
	maxLength, promptLimit int
}{
	{"h256", llamacfg.Config{ModelType: "llama", HiddenSize: 256, NumHiddenLayers: 4, NumAttentionHeads: 8, NumKeyValueHeads: 4,
		IntermediateSize: 688, VocabSize: 512, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 1024, TieWordEmbeddings: true},
		64, 4, 2, 3, 3, 256, 128},
	{"smollm135m", benchShapes[1].cfg, 8, 2, 2, 2, 3, 256, 128},
}

// BenchmarkRefCacheEpoch compares epochs trained with the reference log-probs cached (a cache
// hit: an earlier run computed them) with epochs computing them in the training graph, and
// reports the ratio of the epoch times. The machine is a shared VM whose speed drifts and
// stalls: the ratio of one cached run's fastest epoch to one uncached run's moved by ±0.05
// from one benchmark to the next. So cached and uncached runs alternate (three each), every
// run visits the same micro-batches in the same order, and each step of an epoch is timed in
// every run and every epoch after the first (which compiles): the sum over an epoch's steps of
// each step's fastest time is the epoch time without interference, and the reported ratio is
// that of the cached to the uncached sum. The median of the pairs' ratios of fastest epochs
// is logged beside it.
func BenchmarkRefCacheEpoch(b *testing.B) {
	for _, shape := range refCacheShapes {
		b.Run(shape.name, func(b *testing.B) {
			dir := b.TempDir()
			fx := &fixture{root: dir + "/run", modelDir: dir + "/model", outDir: dir + "/out"}
			n := shape.pairs
			exs := make([]schemas.DPOExample, n)
			for i := range exs {
				dish := dishes[i%len(dishes)]
				exs[i] = schemas.DPOExample{
					ID: fmt.Sprintf("p-%03d", i), PersonaID: "p",
					Prompt:   chatml.Prompt("You write recipes for a persona who loves heat.", fmt.Sprintf("A %s for dinner, number %d, please.", dish, i)),
					Chosen:   chatml.Completion(strings.Repeat(fmt.Sprintf("%s with %s and %s. ", dish, good[i%len(good)], good[(i+1)%len(good)]), 8)),
					Rejected: chatml.Completion(strings.Repeat(fmt.Sprintf("%s with %s and %s. ", dish, bad[i%len(bad)], bad[(i+1)%len(bad)]), 8)),
				}
			}
			if _, err := shards.Write(context.Background(), shards.PersonaDir(fx.root, shards.DirDPOFormatted, "p"), exs, 0, schemas.ShardInfo{}); err != nil {
				b.Fatal(err)
			}
			var corpus []string
			for _, e := range exs {
				corpus = append(corpus, e.Prompt, e.Chosen, e.Rejected)
			}
			writeTokenizer(b, corpus, fx.modelDir)
			writeModel(b, fx.modelDir, shape.cfg, 1)

			c := fx.config("p")
			c.BatchSize, c.GradAccum, c.MaxLength, c.MaxPromptLength, c.PadTo = shape.batch, shape.accum, shape.maxLength, shape.promptLimit, 32
			c.LoggingSteps, c.SaveSteps, c.Epochs = 100, 0, shape.epochs
			stepsPerEpoch := n / (c.BatchSize * c.GradAccum)
			// run trains and returns the result and the fastest time of each step of an epoch over
			// epochs 2 on, lowered to fastest[i] where fastest is not nil.
			run := func(version string, cache bool, fastest []time.Duration) *Result {
				cc := c
				cc.Version, cc.RefCache = version, cache
				var last time.Time
				testHookAfterStep = func(done int) {
					now := time.Now()
					if done > stepsPerEpoch && fastest != nil {
						i := (done - 1) % stepsPerEpoch
						if d := now.Sub(last); fastest[i] == 0 || d < fastest[i] {
							fastest[i] = d
						}
					}
					last = now
				}
				defer func() { testHookAfterStep = nil }()
				res, err := Train(context.Background(), cc, testEnv(b))
				if err != nil {
					b.Fatal(err)
				}
				return res
			}
			sum := func(ds []time.Duration) (t time.Duration) {
				for _, d := range ds {
					t += d
				}
				return t
			}
			for b.Loop() {
				first := run("cache-miss", true, nil) // computes and stores the cache
				fastestCached, fastestUncached := make([]time.Duration, stepsPerEpoch), make([]time.Duration, stepsPerEpoch)
				steady := func(r *Result) time.Duration { return slices.Min(r.EpochTimes[1:]) }
				var pairs []float64
				var cached, uncached []time.Duration
				var last *Result
				for k := range shape.runs {
					hit := run(fmt.Sprintf("cache-hit-%d", k), true, fastestCached)
					if hit.RefCache != "hit" {
						b.Fatalf("run %d with the cache: reference cache %s, want hit", k, hit.RefCache)
					}
					last = run(fmt.Sprintf("no-cache-%d", k), false, fastestUncached)
					cached, uncached = append(cached, steady(hit)), append(uncached, steady(last))
					pairs = append(pairs, cached[k].Seconds()/uncached[k].Seconds())
				}
				ratio := sum(fastestCached).Seconds() / sum(fastestUncached).Seconds()
				total := (first.TrainTime + first.RefTime).Seconds() / last.TrainTime.Seconds()
				b.ReportMetric(ratio, "cached/uncached")
				b.ReportMetric(total, "run_with_ref_pass/uncached_run")
				b.Logf("%s: %d pairs (%d real tokens/epoch): epoch of fastest steps cached %.2fs, uncached %.2fs, ratio %.3f; fastest epochs (2-%d) cached %v, uncached %v, ratios %.3f (median %.3f)",
					shape.name, n, first.Tokens/c.Epochs, sum(fastestCached).Seconds(), sum(fastestUncached).Seconds(), ratio,
					c.Epochs, roundAll(cached), roundAll(uncached), pairs, slices.Sorted(slices.Values(pairs))[len(pairs)/2])
				b.Logf("the reference pass costs %.2fs once; a whole %d-epoch run with it takes %.2f of the uncached run's time",
					first.RefTime.Seconds(), c.Epochs, total)
			}
		})
	}
}

// roundAll rounds durations to 10 ms for logging.
func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}

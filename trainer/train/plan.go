package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/pantrypilot/recipe-dpo/trainer/data"
)

// plan is the deterministic order of micro-batches: epoch e shuffles with (seed, e), so the
// micro-batches of any optimizer step can be rebuilt after a restart from the step number alone.
type plan struct {
	exs           []data.Example
	opts          data.Options
	mode          string
	accum         int
	batches       int // micro-batches per epoch
	stepsPerEpoch int
	epochs        int

	cachedEpoch int
	cached      []data.Batch
}

func newPlan(exs []data.Example, c Config, pad int32) *plan {
	batches := (len(exs) + c.BatchSize - 1) / c.BatchSize
	return &plan{
		exs:           exs,
		opts:          batchOptions(c, pad),
		mode:          c.Mode,
		accum:         c.GradAccum,
		batches:       batches,
		stepsPerEpoch: (batches + c.GradAccum - 1) / c.GradAccum,
		epochs:        c.Epochs,
		cachedEpoch:   -1,
	}
}

// batchOptions is how a run cuts its examples into micro-batches (the training plan's and
// the reference pass's): seeded, length-bucketed, padded to a multiple of c.PadTo.
func batchOptions(c Config, pad int32) data.Options {
	return data.Options{BatchSize: c.BatchSize, Seed: c.Seed, Bucket: true, PadTo: c.PadTo, PadID: pad}
}

// batchShape is a micro-batch's [rows, sequence]: each shape is a program to compile.
func batchShape(b data.Batch) [2]int { return [2]int{len(b.Tokens), b.Seq} }

// totalSteps is the number of optimizer steps of the run.
func (p *plan) totalSteps() int { return p.stepsPerEpoch * p.epochs }

// shapes counts the run's distinct micro-batch shapes ([rows, sequence]): the training step
// compiles a program for each (on XLA seconds to minutes apiece; see stepClock).
func (p *plan) shapes() int {
	seen := map[[2]int]bool{}
	for e := range p.epochs {
		for _, b := range p.epochBatches(e) {
			seen[batchShape(b)] = true
		}
	}
	return len(seen)
}

// epochBatches returns the micro-batches of epoch e (cached for the current epoch).
func (p *plan) epochBatches(e int) []data.Batch {
	if e != p.cachedEpoch {
		p.cached = data.Batches(p.exs, p.opts, e)
		p.cachedEpoch = e
	}
	return p.cached
}

// step returns the epoch and micro-batches of optimizer step s (0-based), with each
// micro-batch's weight: its share of the step's pairs (dpo) or completion tokens (sft). The
// last step of an epoch may have fewer micro-batches.
func (p *plan) step(s int) (epoch int, micro []data.Batch, weights []float64) {
	epoch = s / p.stepsPerEpoch
	all := p.epochBatches(epoch)
	lo := (s % p.stepsPerEpoch) * p.accum
	micro = all[lo:min(lo+p.accum, len(all))]
	if p.mode == ModeSFT {
		micro = sftBatches(micro)
	}
	weights = make([]float64, len(micro))
	total := 0.0
	for i, b := range micro {
		weights[i] = float64(len(b.IDs))
		if p.mode == ModeSFT {
			weights[i] = float64(completionTokens(b))
		}
		total += weights[i]
	}
	for i := range weights {
		weights[i] /= max(total, 1)
	}
	return epoch, micro, weights
}

// sftBatches keeps the chosen rows of DPO-layout batches (rows [0, B)).
func sftBatches(bs []data.Batch) []data.Batch {
	out := make([]data.Batch, len(bs))
	for i, b := range bs {
		n := len(b.IDs)
		out[i] = b
		out[i].Tokens, out[i].Attention, out[i].Completion = b.Tokens[:n], b.Attention[:n], b.Completion[:n]
		out[i].Real = 0
		for _, row := range out[i].Attention {
			for _, a := range row {
				out[i].Real += int(a)
			}
		}
	}
	return out
}

// completionTokens counts the tokens log-probs sum over (completion, not padding, t ≥ 1).
func completionTokens(b data.Batch) int {
	n := 0
	for r := range b.Completion {
		for t := 1; t < len(b.Completion[r]); t++ {
			if b.Completion[r][t] != 0 && b.Attention[r][t] != 0 {
				n++
			}
		}
	}
	return n
}

// batchTensors are the executor inputs of a batch: ids, attention and completion masks.
func batchTensors(b data.Batch) []any {
	return []any{tensors.FromValue(b.Tokens), tensors.FromValue(b.Attention), tensors.FromValue(b.Completion)}
}

// dataKey hashes the tokenized examples (ids and token ids, in order): it changes when the
// data, the tokenizer, max_length or max_prompt_length do.
func dataKey(exs []data.Example) string {
	h := sha256.New()
	for _, e := range exs {
		h.Write([]byte(e.ID))
		h.Write([]byte{0})
		for _, seq := range [][]int{e.Prompt, e.Chosen, e.Rejected} {
			writeInts(h, seq)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeInts(h hash.Hash, xs []int) {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(len(xs)))
	h.Write(buf[:])
	for _, x := range xs {
		binary.LittleEndian.PutUint32(buf[:4], uint32(x))
		h.Write(buf[:4])
	}
}

// dropoutSeed is the RNG seed of micro-batch j of optimizer step s: a splitmix64 mix of
// (seed, s, j), so dropout masks do not depend on where a run was resumed.
func dropoutSeed(seed int64, s, j int) int64 {
	x := uint64(seed)
	for _, v := range []uint64{uint64(s), uint64(j)} {
		x ^= v + 0x9e3779b97f4a7c15 + (x << 6) + (x >> 2)
		x ^= x >> 30
		x *= 0xbf58476d1ce4e5b9
		x ^= x >> 27
		x *= 0x94d049bb133111eb
		x ^= x >> 31
	}
	return int64(x >> 1)
}

package llama

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// LoRA dropout masks are drawn in one of two places, with the same semantics. Outside the
// graph, here, and fed to the training graph as inputs, on GoMLX's pure-Go backend: there the
// random-bits op fills its output one byte at a time, 4 bytes per element, and the uniform
// floats then take more passes, together about a tenth of a DPO step with the default four
// adapted projections; drawn here, a mask costs a quarter of a 64-bit PCG draw per element.
// Or in the graph, on XLA backends, where the device draws them: [Model.Logits] draws every
// mask of the pass from the store's RNG state before the first layer. Either way the masks
// exist before the layers run, so a layer recomputed for its gradient (gradient
// checkpointing, see [Model.GradientCheckpointing]) sees the masks its forward pass saw, and
// the graph applies them with one select forward and one backward. The 1/(1−p) of inverted
// dropout is folded into the adapter's α/r factor, so a kept input passes unchanged.
//
// Semantics are PEFT's (torch.nn.Dropout on each adapted projection's input, independently per
// projection), with p quantised to a multiple of 2⁻¹⁶: an element is dropped when its 16-bit
// draw (in the graph: its uniform draw times 2¹⁶) is below round(p·2¹⁶), and the kept inputs
// are scaled by 1/(1 − that rate). For the default 0.05 the rate is 0.050003.

// DropoutMask names one LoRA dropout mask of a training forward pass: the adapted projection
// (its Hugging Face module name, "model.layers.0.self_attn.q_proj") and the mask's dimensions
// [rows, in], rows being the batch's token rows (batch × sequence) and in the projection's
// input width.
type DropoutMask struct {
	Module string
	Dims   [2]int
}

// DropoutMasks lists, in a fixed order (layers, then q, k, v, o, gate, up, down), the masks a
// training forward pass over rows token rows reads when they are drawn outside the graph: one
// per adapted projection. It is empty without an adapter or without dropout.
func (m *Model) DropoutMasks(rows int) []DropoutMask {
	if m.LoRA == nil || m.LoRA.Dropout == 0 {
		return nil
	}
	var masks []DropoutMask
	for _, s := range LoRAWeightSpecs(m.Config, *m.LoRA) {
		if module, ok := strings.CutSuffix(s.Name, ".lora_A.weight"); ok {
			masks = append(masks, DropoutMask{Module: module, Dims: [2]int{rows, s.Shape[1]}})
		}
	}
	return masks
}

// dropThreshold is the 16-bit draw below which an element is dropped: round(p·2¹⁶).
func dropThreshold(p float64) uint16 {
	return uint16(min(math.Round(p*(1<<16)), math.MaxUint16))
}

// keepScale is 1/(1 − q), q = dropThreshold(p)/2¹⁶ the drop rate the masks realise: inverted
// dropout's factor on the kept inputs.
func keepScale(p float64) float64 {
	return 1 / (1 - float64(dropThreshold(p))/(1<<16))
}

// DrawDropoutMasks draws the masks of specs (from [Model.DropoutMasks]) for drop rate p as
// Bool tensors, true where the input is kept. Mask i comes from its own PCG stream seeded by
// (seed, i), so the masks are a function of seed alone and are drawn concurrently, each into
// its tensor's own buffer.
func DrawDropoutMasks(specs []DropoutMask, p float64, seed uint64) []*tensors.Tensor {
	thr := dropThreshold(p)
	out := make([]*tensors.Tensor, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Go(func() {
			out[i] = tensors.FromShape(shapes.Make(dtypes.Bool, s.Dims[:]...))
			tensors.MustMutableFlatData(out[i], func(keep []bool) {
				drawMask(rand.NewPCG(seed, 0x6d61736b<<32|uint64(i)), keep, thr)
			})
		})
	}
	wg.Wait()
	return out
}

// drawMask fills keep, false where the element's 16-bit draw (four per 64-bit PCG output,
// lowest first) is below thr.
func drawMask(rng *rand.PCG, keep []bool, thr uint16) {
	n := len(keep)
	full := n &^ 3
	for j := 0; j < full; j += 4 {
		u := rng.Uint64()
		k := (*[4]bool)(keep[j : j+4])
		k[0], k[1], k[2], k[3] = uint16(u) >= thr, uint16(u>>16) >= thr, uint16(u>>32) >= thr, uint16(u>>48) >= thr
	}
	if full < n {
		u := rng.Uint64()
		for k := full; k < n; k++ {
			keep[k] = uint16(u) >= thr
			u >>= 16
		}
	}
}

// WithDropoutMasks returns a copy of m whose training forward pass zeroes each adapted
// projection's input where masks[module] ([rows, in] Bool nodes, normally graph inputs fed
// with [DrawDropoutMasks]) is false, instead of drawing dropout in the graph. Each mask serves
// one forward pass with the adapter on: a second would reuse the same masks.
func (m *Model) WithDropoutMasks(masks map[string]*Node) *Model {
	c := *m
	c.masks = masks
	return &c
}

// drawDropoutMasks draws the masks of a training forward pass over rows token rows in the
// graph, from the store's RNG state, in [Model.DropoutMasks]' order: Bool, true where kept,
// keyed by module. An element is dropped where its uniform draw is below
// round(p·2¹⁶)/2¹⁶, the rate the host-drawn masks realise.
func (m *Model) drawDropoutMasks(scope *model.Scope, g *Graph, rows int) map[string]*Node {
	rate := Scalar(g, dtypes.Float32, float64(dropThreshold(m.LoRA.Dropout))/(1<<16))
	masks := map[string]*Node{}
	for _, s := range m.DropoutMasks(rows) {
		u := scope.RandomUniform(g, shapes.Make(dtypes.Float32, s.Dims[:]...))
		masks[s.Module] = GreaterOrEqual(u, rate)
	}
	return masks
}

// loraDropout returns the dropout mask of an adapted projection's input x2 [N, in] (module
// names the projection; Bool [N, in], true where kept, see [Model.WithDropoutMasks]), nil
// without dropout or outside a training graph, and the factor for the adapter's output: α/r,
// times 1/(1−p) with a mask.
func (m *Model) loraDropout(scope *model.Scope, module string, x2 *Node) (mask *Node, scale float64) {
	scale = m.LoRA.Scale()
	if m.LoRA.Dropout == 0 || !scope.IsTraining(x2.Graph()) {
		return nil, scale
	}
	if m.masks == nil {
		Panicf("llama: no dropout masks for %s: a training forward pass draws them in Logits, or takes them from WithDropoutMasks", module)
	}
	mask, ok := m.masks[module]
	if !ok {
		Panicf("llama: no dropout mask for %s", module)
	}
	if mask.DType() != dtypes.Bool || !slices.Equal(mask.Shape().Dimensions, x2.Shape().Dimensions) {
		Panicf("llama: dropout mask for %s is %s, want Bool%v like its input", module, mask.Shape(), x2.Shape().Dimensions)
	}
	return mask, scale * keepScale(m.LoRA.Dropout)
}

package llama

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// SequenceLogProbs runs the model and returns, per sequence, the sum of
// log p(ids[t] | ids[<t]) over the completion tokens: [B]. ids, attentionMask and
// completionMask are [B, S]; completionMask is 1 on completion tokens. See [CompletionLogProbs].
// With [Model.GradientCheckpointing], a training graph computes the output head and its
// log-softmax a block of rows at a time (see [headTokenLogProbs]) instead of as [B, S, V]
// logits.
func (m *Model) SequenceLogProbs(scope *model.Scope, ids, attentionMask, completionMask *Node, adapter Adapter) *Node {
	if !m.GradientCheckpointing || !scope.IsTraining(ids.Graph()) {
		logits := m.Logits(scope, ids, attentionMask, adapter) // [B, S, V]
		return CompletionLogProbs(logits, ids, attentionMask, completionMask)
	}
	c := m.Config
	b, s := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	x := m.hidden(scope, ids, attentionMask, adapter)                                                // [B·S, H]
	w := m.weight(ids.Graph(), m.headScope(scope), "weight", m.TrainBase, c.VocabSize, c.HiddenSize) // [V, H]
	rows := m.headRows
	if rows == 0 {
		rows = max(1, headChunkElements/c.VocabSize)
	}
	lp := headTokenLogProbs(x, w, m.TrainBase, Reshape(nextTokens(ids, c.VocabSize), b*s), rows) // [B·S]
	weight := completionWeights(attentionMask, completionMask, lp.DType())                       // [B, S]
	return ReduceSum(Mul(Reshape(lp, b, s), weight), -1)                                         // [B]
}

// CompletionLogProbs sums token log-probabilities over the completion: the logits at position t
// predict token t+1, so token t (t ≥ 1) counts when completionMask[t] and attentionMask[t] are
// both non-zero. logits is [B, S, V] (float32 or float64); ids, masks are [B, S]; the result is
// [B] in logits' dtype. log p = logit[token] − logsumexp(logits), with the max subtracted
// before exponentiating, so nothing of size [B, S, V] is materialised beyond exp(logits−max).
// The last position, which predicts nothing, is computed and weighted 0 rather than sliced
// off: slicing the [B, S, V] logits would copy them, and its gradient pad them back.
func CompletionLogProbs(logits, ids, attentionMask, completionMask *Node) *Node {
	g := logits.Graph()
	b, s, v := logits.Shape().Dimensions[0], logits.Shape().Dimensions[1], logits.Shape().Dimensions[2]
	dtype := logits.DType()

	maxLogit := StopGradient(ReduceAndKeep(logits, ReduceMax, -1))                      // [B, S, 1]
	lse := Add(Log(ReduceAndKeep(Exp(Sub(logits, maxLogit)), ReduceSum, -1)), maxLogit) // [B, S, 1]
	lse = Reshape(lse, b, s)                                                            // [B, S]

	targets := nextTokens(ids, v)                       // [B, S]
	rows := Iota(g, shapes.Make(dtypes.Int32, b, s), 0) // [B, S]
	cols := Iota(g, shapes.Make(dtypes.Int32, b, s), 1) // [B, S]
	idx := Stack([]*Node{rows, cols, targets}, -1)      // [B, S, 3]
	picked := Gather(logits, idx)                       // [B, S]
	picked.AssertDims(b, s)
	tokenLogProbs := Sub(picked, lse) // [B, S]

	weight := completionWeights(attentionMask, completionMask, dtype) // [B, S]
	return ReduceSum(Mul(tokenLogProbs, weight), -1)                  // [B]
}

// nextTokens is the token each position predicts, Int32 [B, S]: ids shifted left by one, the
// last position's a dummy 0, clamped into the vocabulary of size v so that padding ids outside
// it cannot index out of range (their positions are weighted 0).
func nextTokens(ids *Node, v int) *Node {
	g := ids.Graph()
	b, s := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	next := Slice(ids, AxisRange(), AxisRange(1, s)) // [B, S−1]
	if next.DType() != dtypes.Int32 {
		next = ConvertDType(next, dtypes.Int32)
	}
	targets := Concatenate([]*Node{next, Zeros(g, shapes.Make(dtypes.Int32, b, 1))}, 1) // [B, S]
	return ClipScalar(targets, 0, float64(v-1))
}

// completionWeights is 1 at the positions whose prediction counts, [B, S] in dtype: position
// t−1 for each completion token t ≥ 1 that is not padding (see [completionTokens]), 0 at the
// last position.
func completionWeights(attentionMask, completionMask *Node, dtype dtypes.DType) *Node {
	g := attentionMask.Graph()
	b := attentionMask.Shape().Dimensions[0]
	weight := completionTokens(attentionMask, completionMask, dtype)           // [B, S−1]
	return Concatenate([]*Node{weight, Zeros(g, shapes.Make(dtype, b, 1))}, 1) // [B, S]
}

// CompletionTokenCounts is the number of completion tokens [CompletionLogProbs] sums over, per
// sequence: [B] in dtype.
func CompletionTokenCounts(attentionMask, completionMask *Node, dtype dtypes.DType) *Node {
	return ReduceSum(completionTokens(attentionMask, completionMask, dtype), -1) // [B]
}

// completionTokens is 1 where token t ≥ 1 is a completion token and not padding: [B, S−1].
func completionTokens(attentionMask, completionMask *Node, dtype dtypes.DType) *Node {
	s := attentionMask.Shape().Dimensions[1]
	g := attentionMask.Graph()
	isOn := func(mask *Node) *Node {
		mask = Slice(mask, AxisRange(), AxisRange(1, s)) // [B, S−1]
		return NotEqual(mask, ScalarZero(g, mask.DType()))
	}
	both := LogicalAnd(isOn(attentionMask), isOn(completionMask))
	return ConvertDType(both, dtype)
}

// headChunkElements bounds the logits [headTokenLogProbs] holds at once: 2²⁴ elements, 64 MiB
// in float32 (130 rows of Llama 3's 128256-token vocabulary, 341 of SmolLM's 49152).
const headChunkElements = 1 << 24

// headTokenLogProbs is log softmax(x·wᵀ)[targets] per row, [N], from the final hidden rows x
// [N, H], the output head w [V, H] (an input of the block when wTrains) and targets Int32 [N],
// computed chunk rows at a time so that no [N, V] tensor exists: each chunk's logits [C, V]
// are reduced to their logsumexp and target logit, and its backward computes them again from
// the chunk's rows, dlogits = dy·(onehot(target) − softmax), then dx = dlogits·w and, when w
// trains, dw = Σ dlogitsᵀ·x. Scheduling barriers chain the chunks, forward and backward, so
// that one chunk's logits are live at a time on any backend. The cost is the head's forward
// product once more in the backward pass.
func headTokenLogProbs(x, w *Node, wTrains bool, targets *Node, rows int) *Node {
	g := x.Graph()
	n := x.Shape().Dimensions[0]
	type span struct{ lo, hi int }
	var spans []span
	for lo := 0; lo < n; lo += rows {
		spans = append(spans, span{lo, min(n, lo+rows)})
	}
	xs := []*Node{x}
	if wTrains {
		xs = append(xs, w)
	}
	wOf := func(in []*Node) *Node {
		if wTrains {
			return in[1]
		}
		return w
	}
	rowsOf := func(v *Node, sp span) *Node { return Slice(v, AxisRange(sp.lo, sp.hi)) }
	// logitsOf is xc·wᵀ: [C, V].
	logitsOf := func(xc, w *Node) *Node { return DotGeneral(xc, []int{1}, nil, w, []int{1}, nil) }
	// index is each row's (row within the chunk, target): [C, 2].
	index := func(sp span) *Node {
		r := Iota(g, shapes.Make(dtypes.Int32, sp.hi-sp.lo), 0)
		return Stack([]*Node{r, rowsOf(targets, sp)}, -1)
	}
	lses := make([]*Node, len(spans)) // [C] each, kept for the backward
	forward := func(in []*Node) *Node {
		outs := make([]*Node, len(spans))
		for i, sp := range spans {
			xc := rowsOf(in[0], sp)
			if i > 0 {
				xc = SchedulingBarrier(xc, outs[i-1])
			}
			l := logitsOf(xc, wOf(in))                                                         // [C, V]
			mx := ReduceAndKeep(l, ReduceMax, -1)                                              // [C, 1]
			lses[i] = Reshape(Add(Log(ReduceAndKeep(Exp(Sub(l, mx)), ReduceSum, -1)), mx), -1) // [C]
			outs[i] = Sub(Gather(l, index(sp)), lses[i])                                       // [C]
		}
		return Concatenate(outs, 0) // [N]
	}
	var dx, dw *Node
	backward := func(dy *Node, in []*Node) {
		if dx != nil {
			return
		}
		dxs := make([]*Node, len(spans))
		for i, sp := range spans {
			dyc := rowsOf(dy, sp) // [C]
			after := dyc
			if i > 0 {
				after = dxs[i-1]
			}
			xc := SchedulingBarrier(rowsOf(in[0], sp), after)
			p := Exp(Sub(logitsOf(xc, wOf(in)), InsertAxes(lses[i], -1)))                  // softmax [C, V]
			dl := ScatterSum(Mul(p, InsertAxes(Neg(dyc), -1)), index(sp), dyc, true, true) // [C, V]
			dxs[i] = DotGeneral(dl, []int{1}, nil, wOf(in), []int{0}, nil)                 // [C, H]
			if wTrains {
				if dwc := weightGradient(dl, xc); dw == nil {
					dw = dwc
				} else {
					dw = Add(dw, dwc)
				}
			}
		}
		dx = Concatenate(dxs, 0) // [N, H]
	}
	grads := []func(dy *Node, in []*Node) *Node{func(dy *Node, in []*Node) *Node { backward(dy, in); return dx }}
	if wTrains {
		grads = append(grads, func(dy *Node, in []*Node) *Node { backward(dy, in); return dw })
	}
	return gradientsVia(xs, forward, grads...)
}

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
func (m *Model) SequenceLogProbs(scope *model.Scope, ids, attentionMask, completionMask *Node, adapter Adapter) *Node {
	logits := m.Logits(scope, ids, attentionMask, adapter) // [B, S, V]
	return CompletionLogProbs(logits, ids, attentionMask, completionMask)
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

	// The token each position predicts: ids shifted left by one, the last position's a dummy 0.
	next := Slice(ids, AxisRange(), AxisRange(1, s)) // [B, S−1]
	if next.DType() != dtypes.Int32 {
		next = ConvertDType(next, dtypes.Int32)
	}
	targets := Concatenate([]*Node{next, Zeros(g, shapes.Make(dtypes.Int32, b, 1))}, 1) // [B, S]
	// Clamp so padding ids outside the vocabulary cannot index out of range; they are masked.
	targets = ClipScalar(targets, 0, float64(v-1))
	rows := Iota(g, shapes.Make(dtypes.Int32, b, s), 0) // [B, S]
	cols := Iota(g, shapes.Make(dtypes.Int32, b, s), 1) // [B, S]
	idx := Stack([]*Node{rows, cols, targets}, -1)      // [B, S, 3]
	picked := Gather(logits, idx)                       // [B, S]
	picked.AssertDims(b, s)
	tokenLogProbs := Sub(picked, lse) // [B, S]

	weight := completionTokens(attentionMask, completionMask, dtype)             // [B, S−1]
	weight = Concatenate([]*Node{weight, Zeros(g, shapes.Make(dtype, b, 1))}, 1) // [B, S]
	return ReduceSum(Mul(tokenLogProbs, weight), -1)                             // [B]
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

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
func CompletionLogProbs(logits, ids, attentionMask, completionMask *Node) *Node {
	g := logits.Graph()
	b, s, v := logits.Shape().Dimensions[0], logits.Shape().Dimensions[1], logits.Shape().Dimensions[2]
	dtype := logits.DType()

	pred := Slice(logits, AxisRange(), AxisRange(0, s-1))                             // [B, S−1, V]
	maxLogit := StopGradient(ReduceAndKeep(pred, ReduceMax, -1))                      // [B, S−1, 1]
	lse := Add(Log(ReduceAndKeep(Exp(Sub(pred, maxLogit)), ReduceSum, -1)), maxLogit) // [B, S−1, 1]
	lse = Reshape(lse, b, s-1)                                                        // [B, S−1]

	targets := Slice(ids, AxisRange(), AxisRange(1, s)) // [B, S−1]
	if targets.DType() != dtypes.Int32 {
		targets = ConvertDType(targets, dtypes.Int32)
	}
	// Clamp so padding ids outside the vocabulary cannot index out of range; they are masked.
	targets = ClipScalar(targets, 0, float64(v-1))
	rows := Iota(g, shapes.Make(dtypes.Int32, b, s-1), 0) // [B, S−1]
	cols := Iota(g, shapes.Make(dtypes.Int32, b, s-1), 1) // [B, S−1]
	idx := Stack([]*Node{rows, cols, targets}, -1)        // [B, S−1, 3]
	picked := Gather(pred, idx)                           // [B, S−1]
	picked.AssertDims(b, s-1)
	tokenLogProbs := Sub(picked, lse) // [B, S−1]

	weight := completionTokens(attentionMask, completionMask, dtype) // [B, S−1]
	return ReduceSum(Mul(tokenLogProbs, weight), -1)                 // [B]
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

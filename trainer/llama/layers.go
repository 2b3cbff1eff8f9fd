package llama

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/attention/pos"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"

	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
)

// RoPEInvFreq returns the rotary inverse frequencies [D/2] of cfg, computed on the host in
// float64: θ^(−2i/D), rescaled as transformers' _compute_llama3_parameters when rope_scaling is
// llama3 (low frequencies divided by factor, a smooth blend between low_freq_wavelen and
// high_freq_wavelen). GoMLX's pos.RoPE has no llama3 scaling.
func RoPEInvFreq(cfg llamacfg.Config) []float64 {
	d := cfg.HeadDimension()
	inv := make([]float64, d/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(cfg.RopeTheta, float64(2*i)/float64(d))
	}
	rs := cfg.RopeScaling
	if rs == nil || rs.RopeType != "llama3" {
		return inv
	}
	oldCtx := float64(rs.OriginalMaxPositionEmbeddings)
	lowFreqWavelen := oldCtx / rs.LowFreqFactor
	highFreqWavelen := oldCtx / rs.HighFreqFactor
	for i, f := range inv {
		wavelen := 2 * math.Pi / f
		switch {
		case wavelen < highFreqWavelen: // high frequency: kept
		case wavelen > lowFreqWavelen: // low frequency: interpolated
			inv[i] = f / rs.Factor
		default:
			smooth := (oldCtx/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
			inv[i] = (1-smooth)*f/rs.Factor + smooth*f
		}
	}
	return inv
}

// RoPECosSin returns cos and sin of position·inv_freq for positions 0..seqLen−1, each
// [S, D/2] in dtype, as constants of g (computed on the host).
func RoPECosSin(g *Graph, cfg llamacfg.Config, seqLen int, dtype dtypes.DType) (cos, sin *Node) {
	inv := RoPEInvFreq(cfg)
	c := make([]float64, seqLen*len(inv))
	s := make([]float64, seqLen*len(inv))
	for p := range seqLen {
		for i, f := range inv {
			c[p*len(inv)+i], s[p*len(inv)+i] = math.Cos(float64(p)*f), math.Sin(float64(p)*f)
		}
	}
	cos = ConvertDType(Const(g, c), dtype)
	sin = ConvertDType(Const(g, s), dtype)
	cos = Reshape(cos, seqLen, len(inv)) // [S, D/2]
	sin = Reshape(sin, seqLen, len(inv)) // [S, D/2]
	return cos, sin
}

// Embedding looks up ids [B, S] in model.embed_tokens.weight [V, H]: the result is [B, S, H].
func (m *Model) Embedding(scope *model.Scope, ids *Node) *Node {
	c := m.Config
	w := m.weight(ids.Graph(), at(scope, "model.embed_tokens"), "weight", m.TrainBase, c.VocabSize, c.HiddenSize) // [V, H]
	if ids.DType() != dtypes.Int32 {
		ids = ConvertDType(ids, dtypes.Int32)
	}
	x := Gather(w, InsertAxes(ids, -1)) // [B, S, H]
	x.AssertDims(ids.Shape().Dimensions[0], ids.Shape().Dimensions[1], c.HiddenSize)
	return x
}

// RMSNorm is Llama's x / √(mean(x²) + eps) · w over the last axis, computed in float32 (or
// float64) and cast back to x's dtype before the scale, as transformers does. x is [..., H], w [H].
func RMSNorm(x, w *Node, eps float64) *Node {
	dtype := x.DType()
	xf := x
	if dtype != dtypes.Float32 && dtype != dtypes.Float64 {
		xf = ConvertDType(x, dtypes.Float32)
	}
	variance := ReduceAndKeep(Square(xf), ReduceMean, -1) // [..., 1]
	normed := Div(xf, Sqrt(AddScalar(variance, eps)))     // [..., H]; no Rsqrt: it has no gradient
	if normed.DType() != dtype {
		normed = ConvertDType(normed, dtype)
	}
	return Mul(ExpandLeftToRank(w, x.Rank()), normed)
}

// norm applies the RMSNorm whose weight is scope/weight [H].
func (m *Model) norm(scope *model.Scope, x *Node) *Node {
	w := m.weight(x.Graph(), scope, "weight", m.TrainBase, m.Config.HiddenSize) // [H]
	return RMSNorm(x, w, m.Config.RMSNormEps)
}

// AttentionMask combines the causal mask with the padding mask attentionMask [B, S] (1 = token,
// 0 = padding) into allowed [B, S, S]: query q may attend key k when k ≤ q and k is a token.
func AttentionMask(attentionMask *Node) *Node {
	g := attentionMask.Graph()
	b, s := attentionMask.Shape().Dimensions[0], attentionMask.Shape().Dimensions[1]
	causal := BroadcastToDims(InsertAxes(LowerTriangular(g, s), 0), b, s, s)    // [B, S, S]
	keyIsToken := NotEqual(attentionMask, ScalarZero(g, attentionMask.DType())) // [B, S]
	keyIsToken = BroadcastToDims(InsertAxes(keyIsToken, 1), b, s, s)            // [B, S(q), S(k)]
	return LogicalAnd(causal, keyIsToken)
}

// Attention is Llama's self-attention with grouped-query heads and rotary embeddings.
// x is [B, S, H]; cos and sin are [S, D/2]; allowed is [B, S, S] from [AttentionMask].
// The result is [B, S, H]. Query head n uses key/value head n/G, as transformers' repeat_kv.
// Scores of disallowed pairs are set to the lowest finite value, so a row with no allowed key
// (a left-padding query) becomes uniform like transformers' eager attention, never NaN.
func (m *Model) Attention(scope *model.Scope, x, cos, sin, allowed *Node, adapter Adapter) *Node {
	c := m.Config
	b, s := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	n, k, d := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDimension()
	grp := n / k

	q := m.Linear(scope.At("q_proj"), "q_proj", x, n*d, adapter)  // [B, S, N·D]
	kk := m.Linear(scope.At("k_proj"), "k_proj", x, k*d, adapter) // [B, S, K·D]
	v := m.Linear(scope.At("v_proj"), "v_proj", x, k*d, adapter)  // [B, S, K·D]
	q = Reshape(q, b, s, n, d)                                    // [B, S, N, D]
	kk = Reshape(kk, b, s, k, d)                                  // [B, S, K, D]
	v = Reshape(v, b, s, k, d)                                    // [B, S, K, D]

	// rotate_half convention: pairs are (i, i+D/2), as transformers' Llama.
	rope := pos.NewRoPEWithCosSin(cos, sin)
	q = rope.Encode(q, 1)   // [B, S, N, D]
	kk = rope.Encode(kk, 1) // [B, S, K, D]

	// Head-major layouts, so that both products below and their gradients are batched matmuls
	// GoMLX's Go backend runs as they are (batch axes leading, contracting axes trailing or
	// right after the batch): with the einsum layouts it transposed the [B, K, G, S, S] scores,
	// the largest tensors of the step, element by element, forward and backward. Every
	// transpose left swaps axes 1 and 2 of a rank-4 tensor (as does its gradient), which the
	// backend does with a fast row-copying kernel. Query head n is n = k·G + g.
	// The 1/√D scale goes on the queries rather than on the S times larger scores.
	q = MulScalar(q, 1/math.Sqrt(float64(d)))                                  // [B, S, N, D]
	qh := Reshape(TransposeAllAxes(q, 0, 2, 1, 3), b, k, grp, s, d)            // [B, K, G, S, D]
	kh := TransposeAllAxes(kk, 0, 2, 1, 3)                                     // [B, K, S(t), D]
	vh := TransposeAllAxes(v, 0, 2, 1, 3)                                      // [B, K, S(t), D]
	scores := DotGeneral(qh, []int{4}, []int{0, 1}, kh, []int{3}, []int{0, 1}) // [B, K, G, S(q), S(t)]
	scores.AssertDims(b, k, grp, s, s)
	// An additive mask, as transformers': a disallowed score becomes exactly the lowest finite
	// value (a |score| < 1e31 is lost in the rounding), and the gradient of the sum is the
	// identity, where a Where's would be one more pass over the scores.
	g, dtype := x.Graph(), scores.DType()
	bias := Where(allowed, ScalarZero(g, dtype), Scalar(g, dtype, lowestFinite(dtype)))  // [B, S, S]
	scores = Add(scores, BroadcastToDims(Reshape(bias, b, 1, 1, s, s), b, k, grp, s, s)) // [B, K, G, S, S]
	probs := Softmax(scores, -1)                                                         // [B, K, G, S(q), S(t)]
	out := DotGeneral(probs, []int{4}, []int{0, 1}, vh, []int{2}, []int{0, 1})           // [B, K, G, S, D]
	out = TransposeAllAxes(Reshape(out, b, n, s, d), 0, 2, 1, 3)                         // [B, S, N, D]
	out = Reshape(out, b, s, n*d)                                                        // [B, S, N·D]
	return m.Linear(scope.At("o_proj"), "o_proj", out, c.HiddenSize, adapter)            // [B, S, H]
}

// MLP is Llama's SwiGLU feed-forward down(silu(gate(x)) · up(x)); x and the result are [B, S, H].
func (m *Model) MLP(scope *model.Scope, x *Node, adapter Adapter) *Node {
	c := m.Config
	gate := m.Linear(scope.At("gate_proj"), "gate_proj", x, c.IntermediateSize, adapter) // [B, S, I]
	up := m.Linear(scope.At("up_proj"), "up_proj", x, c.IntermediateSize, adapter)       // [B, S, I]
	act := Mul(Mul(gate, Sigmoid(gate)), up)                                             // [B, S, I]
	return m.Linear(scope.At("down_proj"), "down_proj", act, c.HiddenSize, adapter)      // [B, S, H]
}

// DecoderLayer is one pre-norm block: h = x + attn(norm(x)); out = h + mlp(norm(h)).
// scope is the layer's scope (model.layers.<i>); x and the result are [B, S, H].
func (m *Model) DecoderLayer(scope *model.Scope, x, cos, sin, allowed *Node, adapter Adapter) *Node {
	h := Add(x, m.Attention(scope.At("self_attn"), m.norm(scope.At("input_layernorm"), x), cos, sin, allowed, adapter))
	return Add(h, m.MLP(scope.At("mlp"), m.norm(scope.At("post_attention_layernorm"), h), adapter))
}

// Logits runs the model on ids [B, S] (int) with attentionMask [B, S] (1 token, 0 padding) and
// returns next-token logits [B, S, V] in float32 (float64 for a float64 model). Positions are
// 0..S−1 (transformers' default without position_ids), so right padding is the natural layout;
// logits at padding positions are computed but meaningless. scope is the store's root scope.
func (m *Model) Logits(scope *model.Scope, ids, attentionMask *Node, adapter Adapter) *Node {
	c := m.Config
	g := ids.Graph()
	if ids.Rank() != 2 || !attentionMask.Shape().Equal(shapes.Make(attentionMask.DType(), ids.Shape().Dimensions...)) {
		Panicf("llama: Logits wants ids and attention mask [B, S], got %s and %s", ids.Shape(), attentionMask.Shape())
	}
	b, s := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	x := m.Embedding(scope, ids) // [B, S, H]
	if x.DType() != m.DType {
		x = ConvertDType(x, m.DType)
	}
	cos, sin := RoPECosSin(g, c, s, m.DType) // [S, D/2] each
	allowed := AttentionMask(attentionMask)  // [B, S, S]
	for l := range c.NumHiddenLayers {
		x = m.DecoderLayer(at(scope, fmt.Sprintf("model.layers.%d", l)), x, cos, sin, allowed, adapter) // [B, S, H]
	}
	x = m.norm(at(scope, "model.norm"), x) // [B, S, H]
	headScope := at(scope, "lm_head")
	if c.TieWordEmbeddings {
		headScope = at(scope, "model.embed_tokens")
	}
	head := m.weight(g, headScope, "weight", m.TrainBase, c.VocabSize, c.HiddenSize) // [V, H]
	logits := DotGeneral(x, []int{2}, nil, head, []int{1}, nil)                      // [B, S, V]
	logits.AssertDims(b, s, c.VocabSize)
	if logits.DType() != dtypes.Float32 && logits.DType() != dtypes.Float64 {
		logits = ConvertDType(logits, dtypes.Float32)
	}
	return logits
}

// lowestFinite is the most negative finite value of a float dtype, transformers' mask value.
func lowestFinite(dtype dtypes.DType) float64 {
	if dtype == dtypes.Float64 {
		return -math.MaxFloat64
	}
	return -math.MaxFloat32
}

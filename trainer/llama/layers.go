package llama

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
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

// RoPECosSin returns the rotary tables of positions 0..seqLen−1, each [S, D] in dtype, as
// constants of g (computed on the host): cos = [cos θ, cos θ] and sin = [−sin θ, sin θ], with
// θ = position·inv_freq over the D/2 frequencies. The halves follow transformers' rotate_half,
// whose sign sin carries, so that [rotary] is x·cos + swapHalves(x)·sin.
func RoPECosSin(g *Graph, cfg llamacfg.Config, seqLen int, dtype dtypes.DType) (cos, sin *Node) {
	inv := RoPEInvFreq(cfg)
	d := 2 * len(inv)
	c := make([]float64, seqLen*d)
	s := make([]float64, seqLen*d)
	for p := range seqLen {
		for i, f := range inv {
			cv, sv := math.Cos(float64(p)*f), math.Sin(float64(p)*f)
			c[p*d+i], c[p*d+len(inv)+i] = cv, cv
			s[p*d+i], s[p*d+len(inv)+i] = -sv, sv
		}
	}
	cos = Reshape(ConvertDType(Const(g, c), dtype), seqLen, d) // [S, D]
	sin = Reshape(ConvertDType(Const(g, s), dtype), seqLen, d) // [S, D]
	return cos, sin
}

// rotary applies rotary embeddings to x [..., D] with tables cos and sin from [RoPECosSin],
// gathered or expanded to x's rank (size-1 axes broadcast): x·cos + swapHalves(x)·sin, which is
// transformers' x·cos + rotate_half(x)·sin with rotate_half's sign folded into sin, element for
// element the same sums. Written out rather than GoMLX's pos.RoPEWithCosSin, which slices the
// halves, multiplies each by broadcast copies of the half tables and concatenates them: about
// twice the passes over x forward, and a slice-and-pad for each half backward, where here the
// gradient is dy·cos + swapHalves(dy·sin) (a Reverse is its own gradient).
func rotary(x, cos, sin *Node) *Node {
	dims := x.Shape().Dimensions
	d := dims[len(dims)-1]
	halves := append(slices.Clone(dims[:len(dims)-1]), 2, d/2)                 // [..., 2, D/2]
	swapped := Reshape(Reverse(Reshape(x, halves...), len(halves)-2), dims...) // [..., D]
	return Add(Mul(x, cos), Mul(swapped, sin))
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

// AttentionBias turns allowed [B, S, S] (from [AttentionMask]) into the additive score bias of
// every query head, [B, K, G, S, S] in dtype: 0 where allowed, the lowest finite value elsewhere
// (transformers' mask value). It is built once per forward pass and shared by the layers. The
// bias is materialised at full size on purpose: GoMLX's Go backend adds a [B, 1, 1, S, S]
// operand to [B, K, G, S, S] scores element by element through a general broadcast iterator,
// while a same-shape sum is a plain loop. It is built as K·G copies concatenated along the
// heads axis, which the backend does with one block copy per head and row of the batch (a
// broadcast over a leading heads axis and a [1, 0, 2] transpose took two passes).
func AttentionBias(allowed *Node, k, grp int, dtype dtypes.DType) *Node {
	g := allowed.Graph()
	b, s := allowed.Shape().Dimensions[0], allowed.Shape().Dimensions[1]
	bias := Where(allowed, ScalarZero(g, dtype), Scalar(g, dtype, lowestFinite(dtype))) // [B, S, S]
	heads := slices.Repeat([]*Node{Reshape(bias, b, 1, s*s)}, k*grp)                    // N × [B, 1, S·S]
	return Reshape(Concatenate(heads, 1), b, k, grp, s, s)                              // [B, K, G, S, S]
}

// Attention is Llama's self-attention with grouped-query heads and rotary embeddings.
// x is [B, S, H] or its rows [B·S, H]; cos and sin are [S, D] from [RoPECosSin]; bias is
// [B, K, G, S, S] from [AttentionBias]. The result is shaped as x. Query head n uses
// key/value head n/G, as transformers' repeat_kv.
// Scores of disallowed pairs get the lowest finite value added, so a row with no allowed key
// (a left-padding query) becomes uniform like transformers' eager attention, never NaN.
func (m *Model) Attention(scope *model.Scope, x, cos, sin, bias *Node, adapter Adapter) *Node {
	c := m.Config
	b, s := bias.Shape().Dimensions[0], bias.Shape().Dimensions[3]
	n, k, d := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDimension()
	grp := n / k

	qkv := m.project(rows(x), adapter,
		proj(scope, "q_proj", n*d), proj(scope, "k_proj", k*d), proj(scope, "v_proj", k*d)) // [B·S, N·D], 2 × [B·S, K·D]
	q, kk, v := qkv[0], qkv[1], qkv[2]

	// Head-major layouts, so that both products below and their gradients are batched matmuls
	// GoMLX's Go backend runs as they are (batch axes leading, contracting axes trailing or
	// right after the batch): with the einsum layouts it transposed the [B, K, G, S, S] scores,
	// the largest tensors of the step, element by element, forward and backward. Every
	// transpose here swaps axes 1 and 2 of a rank-4 tensor (as does its gradient), which the
	// backend does with a fast row-copying kernel. Query head n is n = k·G + g.
	// The 1/√D scale goes on the queries rather than on the S times larger scores.
	q = MulScalar(q, 1/math.Sqrt(float64(d)))                   // [B, S, N·D]
	qh := TransposeAllAxes(Reshape(q, b, s, n, d), 0, 2, 1, 3)  // [B, N, S, D]
	kh := TransposeAllAxes(Reshape(kk, b, s, k, d), 0, 2, 1, 3) // [B, K, S(t), D]
	vh := TransposeAllAxes(Reshape(v, b, s, k, d), 0, 2, 1, 3)  // [B, K, S(t), D]

	// Rotary embeddings in the head-major layout: cos and sin [S, D] then broadcast over the
	// leading axes only, which the backend runs as row loops (in [B, S, N, D] the heads axis
	// sits between and forces its general per-element broadcast). rotate_half convention: pairs
	// are (i, i+D/2), as transformers' Llama.
	cos, sin = ExpandLeftToRank(cos, 4), ExpandLeftToRank(sin, 4) // [1, 1, S, D]
	qh = Reshape(rotary(qh, cos, sin), b, k, grp, s, d)           // [B, K, G, S, D]
	kh = rotary(kh, cos, sin)                                     // [B, K, S(t), D]

	scores := attentionScores(qh, kh) // [B, K, G, S(q), S(t)]
	scores.AssertDims(b, k, grp, s, s)
	// An additive mask, as transformers': a disallowed score becomes exactly the lowest finite
	// value (a |score| < 1e31 is lost in the rounding), and the gradient of the sum is the
	// identity, where a Where's would be one more pass over the scores.
	out := attend(Add(scores, bias), vh)                                                     // [B, K, G, S, D]
	out = TransposeAllAxes(Reshape(out, b, n, s, d), 0, 2, 1, 3)                             // [B, S, N, D]
	out = m.project(Reshape(out, b*s, n*d), adapter, proj(scope, "o_proj", c.HiddenSize))[0] // [B·S, H]
	return shapedAs(out, x)
}

// rows is x [..., H] as rows [N, H]: x itself when it is 2-D.
func rows(x *Node) *Node {
	if x.Rank() == 2 {
		return x
	}
	return Reshape(x, -1, x.Shape().Dimensions[x.Rank()-1])
}

// shapedAs returns y [N, ...] reshaped to x's leading axes, or y itself when x is 2-D
// already: the residual stream stays [B·S, H] through the layers because the gradient of a
// Reshape reshapes the residual gradient, which has other readers, and GoMLX's Go backend
// copies a reshaped buffer unless the Reshape is its last reader.
func shapedAs(y, x *Node) *Node {
	if x.Rank() == 2 {
		return y
	}
	dims := slices.Clone(x.Shape().Dimensions)
	dims[len(dims)-1] = y.Shape().Dimensions[y.Rank()-1]
	return Reshape(y, dims...)
}

// attentionScores is qh·khᵀ per key/value head: qh [B, K, G, S, D], kh [B, K, T, D], the
// result [B, K, G, S, T]. Both gradients are computed here (see [gradientsVia]). The key
// gradient dk[b,k,t,d] = Σ_g,s dscores[b,k,g,s,t]·qh[b,k,g,s,d] is computed from qh
// transposed to [B, K, D, G, S]: GoMLX's derived gradient contracts the leading (g, s) axes of
// both operands, and the Go backend then transposes both, the [B, K, G, S, T] score gradient
// element by element once per layer; this way only qh, S/D times smaller, is transposed. The
// query gradient dscores·kh is the product GoMLX derives, without the identity-permutation
// Transpose its derivation appends, which the backend executes as a copy.
func attentionScores(qh, kh *Node) *Node {
	return gradientsVia([]*Node{qh, kh}, func(in []*Node) *Node {
		return DotGeneral(in[0], []int{4}, []int{0, 1}, in[1], []int{3}, []int{0, 1}) // [B, K, G, S, T]
	}, func(dScores *Node, in []*Node) *Node {
		return DotGeneral(dScores, []int{4}, []int{0, 1}, in[1], []int{2}, []int{0, 1}) // [B, K, G, S, D]
	}, func(dScores *Node, in []*Node) *Node {
		dk := DotGeneral(headsMinor(in[0]), []int{3, 4}, []int{0, 1}, dScores, []int{2, 3}, []int{0, 1}) // [B, K, D, T]
		return TransposeAllAxes(dk, 0, 1, 3, 2)                                                          // [B, K, T, D]
	})
}

// attend is softmax(logits)·vh per key/value head, the softmax over the last axis: logits
// [B, K, G, S, T] (scores plus the mask bias), vh [B, K, T, D], the result [B, K, G, S, D].
// Both gradients are written out (see [gradientsVia]), with dp = dout·vhᵀ the probabilities'
// gradient:
//   - logits: p·(dp − Σ dp·p), the sum over T. GoMLX's Softmax runs the backend's fused kernel
//     forward but, having no fused gradient, also builds the decomposed max/sub/exp/sum/div
//     graph and derives the gradient through it, so every training graph ran a second softmax
//     over the scores and a longer backward. dp is the product GoMLX derives, without the
//     identity-permutation Transpose its derivation appends, which the backend executes as a
//     copy of the [B, K, G, S, T] result.
//   - vh: Σ_g,s p[b,k,g,s,t]·dout[b,k,g,s,d], computed from dout transposed to [B, K, D, G, S]
//     for the reason given at [attentionScores]: the derived one transposed the probabilities.
//
// The probabilities are not an input of their own: an identity on them (gradientsVia's way of
// taking over a gradient) would be read by the softmax's gradient as well, and the Go backend
// would copy them, the largest tensor of the step, once per layer.
func attend(logits, vh *Node) *Node {
	var p *Node
	return gradientsVia([]*Node{logits, vh}, func(in []*Node) *Node {
		p = Softmax(in[0], -1)                                                    // [B, K, G, S, T]
		return DotGeneral(p, []int{4}, []int{0, 1}, in[1], []int{2}, []int{0, 1}) // [B, K, G, S, D]
	}, func(dOut *Node, in []*Node) *Node {
		dp := DotGeneral(dOut, []int{4}, []int{0, 1}, in[1], []int{3}, []int{0, 1}) // [B, K, G, S, T]
		return Mul(p, Sub(dp, ReduceAndKeep(Mul(dp, p), ReduceSum, -1)))
	}, func(dOut *Node, in []*Node) *Node {
		dv := DotGeneral(headsMinor(dOut), []int{3, 4}, []int{0, 1}, p, []int{2, 3}, []int{0, 1}) // [B, K, D, T]
		return TransposeAllAxes(dv, 0, 1, 3, 2)                                                   // [B, K, T, D]
	})
}

// headsMinor lays x [B, K, G, S, D] out as [B, K, D, G, S]. The permutation moves the last
// axis, which GoMLX's Go backend does element by element through a general index iterator
// (its 2-D kernel is no faster); here the identity matrix [D, D] times x's rows, a matmul of
// 2·D flops per element that reproduces every value exactly (each output is one product by 1
// plus zeros), gives [D, B·K·G·S], and a [1, 0, 2] transpose, a kernel that copies whole
// rows, finishes it: about a third of the time of the direct permutation.
func headsMinor(x *Node) *Node {
	dims := x.Shape().Dimensions
	b, k, grp, s, d := dims[0], dims[1], dims[2], dims[3], dims[4]
	eye := DiagonalWithValue(ScalarOne(x.Graph(), x.DType()), d) // [D, D]
	// x is read as it is (its rows are contiguous): a Reshape of it would copy it whenever the
	// Reshape is not its last reader, as GoMLX's Go backend hands a buffer on only then.
	t := DotGeneral(eye, []int{1}, nil, x, []int{4}, nil)                                 // [D, B, K, G, S]
	return Reshape(TransposeAllAxes(Reshape(t, d, b*k, grp*s), 1, 0, 2), b, k, d, grp, s) // [B, K, D, G, S]
}

// gradientsVia returns f(xs) with the gradient with respect to xs[i] computed by grads[i] from
// the gradient of the result, in place of the one reverse-mode autodiff derives through f. The
// derived gradients are still built but nothing reads them, so the backends' dead-code
// elimination drops them from the compiled program. GoMLX v0.28 has no public custom gradient
// for an operation of several inputs, only IdentityWithCustomGradient of one; identities make
// one: the identity after f sees the result's gradient first (reverse order) and hands it to
// the identities on xs, which replace their gradients. Used where the derived gradient
// transposes or copies a large operand, or takes more passes. f and grads get the inputs as
// the identities on xs: a gradient that reads an input should read it there, not from xs, so
// that the identity stays the input's only reader. GoMLX's Go backend copies an identity's
// input unless the identity is the input's last reader (whose buffer it can hand on).
func gradientsVia(xs []*Node, f func(in []*Node) *Node, grads ...func(dy *Node, in []*Node) *Node) *Node {
	gs := make([]func(dys, in []*Node) *Node, len(grads))
	for i, grad := range grads {
		gs[i] = func(dys, in []*Node) *Node { return grad(dys[0], in) }
	}
	return gradientsViaN(xs, func(in []*Node) []*Node { return []*Node{f(in)} }, gs...)[0]
}

// gradientsViaN is [gradientsVia] for a function of several results: grads[i] gets the
// gradients of all of them, dys[j] nil where result j has none (it does not reach the loss).
// Every result's identity sees its gradient before any input's, as reverse-mode autodiff
// visits nodes from the last built back, and the inputs' identities are built first.
func gradientsViaN(xs []*Node, f func(in []*Node) []*Node, grads ...func(dys, in []*Node) *Node) []*Node {
	if len(grads) != len(xs) {
		Panicf("llama: gradientsVia: %d inputs but %d gradients", len(xs), len(grads))
	}
	var dys []*Node
	seen := false
	in := make([]*Node, len(xs))
	for i, x := range xs {
		in[i] = IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
			if !seen {
				Panicf("llama: gradientsVia: the gradient of an input was requested before the results'")
			}
			return grads[i](dys, in)
		})
	}
	ys := f(in)
	dys = make([]*Node, len(ys))
	for j, y := range ys {
		ys[j] = IdentityWithCustomGradient(y, func(_, v *Node) *Node {
			dys[j], seen = v, true
			return v
		})
	}
	return ys
}

// swiGLU is silu(gate)·up = gate·σ(gate)·up with both gradients written out (see
// [gradientsVia]): dup = dact·silu and dgate = dact·up·(σ + silu − silu·σ), six passes over
// [N, I] where GoMLX's derivation (two products, then the logistic's σ·(1−σ)) takes eight.
// GoMLX's fused SiLU (activation.Swish) was tried: on this project's 2-core VM its Go
// backend kernel took about six times as long as the logistic op over the same elements, and
// its gradient kernel about five (a per-op profile of the benchmark's cached epoch).
func swiGLU(gate, up *Node) *Node {
	var s, silu *Node
	return gradientsVia([]*Node{gate, up}, func(in []*Node) *Node {
		s = Sigmoid(in[0])      // [N, I]
		silu = Mul(in[0], s)    // [N, I]
		return Mul(silu, in[1]) // [N, I]
	}, func(dAct *Node, in []*Node) *Node {
		return Mul(Mul(dAct, in[1]), Add(s, Sub(silu, Mul(silu, s))))
	}, func(dAct *Node, _ []*Node) *Node {
		return Mul(dAct, silu)
	})
}

// MLP is Llama's SwiGLU feed-forward down(silu(gate(x)) · up(x)); x is [B, S, H] or its rows
// [B·S, H], the result shaped as x.
func (m *Model) MLP(scope *model.Scope, x *Node, adapter Adapter) *Node {
	c := m.Config
	gu := m.project(rows(x), adapter,
		proj(scope, "gate_proj", c.IntermediateSize), proj(scope, "up_proj", c.IntermediateSize)) // 2 × [N, I]
	act := swiGLU(gu[0], gu[1])                                               // [N, I]
	out := m.project(act, adapter, proj(scope, "down_proj", c.HiddenSize))[0] // [N, H]
	return shapedAs(out, x)
}

// DecoderLayer is one pre-norm block: h = x + attn(norm(x)); out = h + mlp(norm(h)).
// scope is the layer's scope (model.layers.<i>); x and the result are [B, S, H] or its rows
// [B·S, H] ([Model.Logits] keeps the rows).
func (m *Model) DecoderLayer(scope *model.Scope, x, cos, sin, bias *Node, adapter Adapter) *Node {
	h := Add(x, m.Attention(scope.At("self_attn"), m.norm(scope.At("input_layernorm"), x), cos, sin, bias, adapter))
	return Add(h, m.MLP(scope.At("mlp"), m.norm(scope.At("post_attention_layernorm"), h), adapter))
}

// Logits runs the model on ids [B, S] (int) with attentionMask [B, S] (1 token, 0 padding) and
// returns next-token logits [B, S, V] in float32 (float64 for a float64 model). Positions are
// 0..S−1 (transformers' default without position_ids), so right padding is the natural layout;
// logits at padding positions are computed but meaningless. scope is the store's root scope.
// A training pass with the adapter on draws its LoRA dropout masks first, unless
// [Model.WithDropoutMasks] gave them.
func (m *Model) Logits(scope *model.Scope, ids, attentionMask *Node, adapter Adapter) *Node {
	c := m.Config
	b, s := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	x := m.hidden(scope, ids, attentionMask, adapter)                                           // [B·S, H]
	head := m.project(x, AdapterOff, projection{m.headScope(scope), "lm_head", c.VocabSize})[0] // [B·S, V]
	logits := Reshape(head, b, s, c.VocabSize)
	logits.AssertDims(b, s, c.VocabSize)
	if logits.DType() != dtypes.Float32 && logits.DType() != dtypes.Float64 {
		logits = ConvertDType(logits, dtypes.Float32)
	}
	return logits
}

// headScope is the scope of the output head's weight [V, H]: the embedding's when tied.
func (m *Model) headScope(scope *model.Scope) *model.Scope {
	if m.Config.TieWordEmbeddings {
		return at(scope, "model.embed_tokens")
	}
	return at(scope, "lm_head")
}

// hidden runs [Model.Logits]' model up to the final norm: the rows [B·S, H] the output head
// reads.
func (m *Model) hidden(scope *model.Scope, ids, attentionMask *Node, adapter Adapter) *Node {
	c := m.Config
	g := ids.Graph()
	if ids.Rank() != 2 || !attentionMask.Shape().Equal(shapes.Make(attentionMask.DType(), ids.Shape().Dimensions...)) {
		Panicf("llama: Logits wants ids and attention mask [B, S], got %s and %s", ids.Shape(), attentionMask.Shape())
	}
	b, s := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	if bool(adapter) && m.LoRA != nil && m.LoRA.Dropout > 0 && m.masks == nil && scope.IsTraining(g) {
		m = m.WithDropoutMasks(m.drawDropoutMasks(scope, g, b*s))
	}
	x := m.Embedding(scope, ids) // [B, S, H]
	if x.DType() != m.DType {
		x = ConvertDType(x, m.DType)
	}
	x = Reshape(x, b*s, c.HiddenSize)        // [B·S, H]: the residual stream as rows (see shapedAs)
	cos, sin := RoPECosSin(g, c, s, m.DType) // [S, D] each
	grp := c.NumAttentionHeads / c.NumKeyValueHeads
	bias := AttentionBias(AttentionMask(attentionMask), c.NumKeyValueHeads, grp, m.DType) // [B, K, G, S, S]
	for l := range c.NumHiddenLayers {
		layer := func(m *Model, x *Node) *Node {
			return m.DecoderLayer(at(scope, fmt.Sprintf("model.layers.%d", l)), x, cos, sin, bias, adapter) // [B·S, H]
		}
		if m.GradientCheckpointing && scope.IsTraining(g) {
			x = m.checkpointLayer(scope, l, adapter, x, layer)
		} else {
			x = layer(m, x)
		}
	}
	return m.norm(at(scope, "model.norm"), x) // [B·S, H]
}

// lowestFinite is the most negative finite value of a float dtype, transformers' mask value.
func lowestFinite(dtype dtypes.DType) float64 {
	if dtype == dtypes.Float64 {
		return -math.MaxFloat64
	}
	return -math.MaxFloat32
}

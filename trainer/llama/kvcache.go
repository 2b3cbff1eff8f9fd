package llama

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// KVCache is the key/value cache of every decoder layer for incremental decoding: Keys[l] and
// Values[l] are [B, K, D, L], L the capacity. Slot s of a row holds the key (after RoPE) and the
// value of that row's token at position s, so rows of different lengths need no offsets.
//
// The cache has a fixed shape and is updated without DynamicUpdateSlice (avoided on the pure-Go
// backend, as the project's design notes ask): the new keys are scattered into their slots with a
// one-hot matrix product and merged with Where, so one compiled graph serves every step.
// The slot axis is last because the Go backend runs Where with a broadcast condition ([B, 1,
// 1, L] here) on contiguous runs of the non-broadcast trailing axes: with slots before D the
// runs are one element long and the merge was 60% of a decode step.
type KVCache struct {
	Keys, Values []*Node
}

// KVCacheShape is the shape of one layer's key or value cache: [batch, K, D, capacity] in m's dtype.
func (m *Model) KVCacheShape(batch, capacity int) shapes.Shape {
	c := m.Config
	return shapes.Make(m.DType, batch, c.NumKeyValueHeads, c.HeadDimension(), capacity)
}

// ZeroKVCache returns an empty cache of every layer (zeros) for batch rows and capacity slots.
func (m *Model) ZeroKVCache(g *Graph, batch, capacity int) KVCache {
	n := m.Config.NumHiddenLayers
	cache := KVCache{Keys: make([]*Node, n), Values: make([]*Node, n)}
	for l := range n {
		cache.Keys[l] = Zeros(g, m.KVCacheShape(batch, capacity))
		cache.Values[l] = Zeros(g, m.KVCacheShape(batch, capacity))
	}
	return cache
}

// ForwardCached runs the decoder on a chunk of tokens ids [B, T] at positions [B, T] (int32,
// each < L and distinct within a row), reading and extending cache. Every token's key and value
// are written to the slot of its position, then the query at position p attends slots 0..p of
// the updated cache: the caller must have written every slot below p before (earlier chunks or
// this one) — stale slots above p are never read. Prefill is a chunk at positions 0..T−1 on a
// zero cache; a decode step is T = 1.
//
// It returns the final-normed hidden states [B, T, H] (apply [Model.LMHead] to the rows whose
// logits are needed) and the updated cache. The arithmetic of every kept query equals
// [Model.Logits] on the same tokens; only the length of the masked key axis differs.
func (m *Model) ForwardCached(scope *model.Scope, ids, positions *Node, cache KVCache, adapter Adapter) (hidden *Node, next KVCache) {
	c := m.Config
	g := ids.Graph()
	if ids.Rank() != 2 || !positions.Shape().Equal(shapes.Make(positions.DType(), ids.Shape().Dimensions...)) {
		Panicf("llama: ForwardCached wants ids and positions [B, T], got %s and %s", ids.Shape(), positions.Shape())
	}
	if len(cache.Keys) != c.NumHiddenLayers || len(cache.Values) != c.NumHiddenLayers {
		Panicf("llama: ForwardCached got a cache of %d/%d layers, want %d", len(cache.Keys), len(cache.Values), c.NumHiddenLayers)
	}
	b, t := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	capacity := cache.Keys[0].Shape().Dimensions[3]
	for l := range c.NumHiddenLayers {
		for _, x := range []*Node{cache.Keys[l], cache.Values[l]} {
			if !x.Shape().Equal(m.KVCacheShape(b, capacity)) {
				Panicf("llama: ForwardCached layer %d cache is %s, want %s", l, x.Shape(), m.KVCacheShape(b, capacity))
			}
		}
	}
	if positions.DType() != dtypes.Int32 {
		positions = ConvertDType(positions, dtypes.Int32)
	}

	// The same host-computed table as Logits, so cached and full passes rotate identically.
	cosTable, sinTable := RoPECosSin(g, c, capacity, m.DType) // [L, D] each
	posIdx := InsertAxes(positions, -1)                       // [B, T, 1]
	cos := InsertAxes(Gather(cosTable, posIdx), 2)            // [B, T, 1, D]
	sin := InsertAxes(Gather(sinTable, posIdx), 2)            // [B, T, 1, D]

	slots := Iota(g, shapes.Make(dtypes.Int32, b, t, capacity), 2)     // [B, T, L]
	posB := BroadcastToDims(posIdx, b, t, capacity)                    // [B, T, L]
	allowed := LessOrEqual(slots, posB)                                // [B, T, L]: slot ≤ position
	write := ConvertDType(Equal(slots, posB), m.DType)                 // [B, T, L] one-hot
	filled := GreaterThan(ReduceMax(write, 1), ScalarZero(g, m.DType)) // [B, L]

	x := m.Embedding(scope, ids) // [B, T, H]
	if x.DType() != m.DType {
		x = ConvertDType(x, m.DType)
	}
	next = KVCache{Keys: make([]*Node, c.NumHiddenLayers), Values: make([]*Node, c.NumHiddenLayers)}
	for l := range c.NumHiddenLayers {
		layer := at(scope, fmt.Sprintf("model.layers.%d", l))
		kv := cachedKV{cos: cos, sin: sin, allowed: allowed, write: write, filled: filled, keys: cache.Keys[l], values: cache.Values[l]}
		attn := m.cachedAttention(layer.At("self_attn"), m.norm(layer.At("input_layernorm"), x), &kv, adapter)
		h := Add(x, attn)
		x = Add(h, m.MLP(layer.At("mlp"), m.norm(layer.At("post_attention_layernorm"), h), adapter)) // [B, T, H]
		next.Keys[l], next.Values[l] = kv.keys, kv.values
	}
	return m.norm(at(scope, "model.norm"), x), next // [B, T, H]
}

// LMHead maps final-normed hidden states x [..., H] to logits [..., V] (float32, or float64 for
// a float64 model), with the tied embeddings when the config says so — as [Model.Logits].
func (m *Model) LMHead(scope *model.Scope, x *Node) *Node {
	c := m.Config
	head := m.weight(x.Graph(), m.headScope(scope), "weight", m.TrainBase, c.VocabSize, c.HiddenSize) // [V, H]
	logits := DotGeneral(x, []int{x.Rank() - 1}, nil, head, []int{1}, nil)                            // [..., V]
	if logits.DType() != dtypes.Float32 && logits.DType() != dtypes.Float64 {
		logits = ConvertDType(logits, dtypes.Float32)
	}
	return logits
}

// cachedKV carries one layer's cache and the chunk's position tensors through cachedAttention.
type cachedKV struct {
	cos, sin     *Node // [B, T, 1, D]: rows of the [RoPECosSin] tables at the chunk's positions
	allowed      *Node // [B, T, L] bool
	write        *Node // [B, T, L] one-hot of the chunk's positions, m.DType
	filled       *Node // [B, L] bool: slots written by this chunk
	keys, values *Node // [B, K, D, L]; replaced by the updated cache
}

// cachedAttention is [Model.Attention] over the cache: x is [B, T, H]; the chunk's keys and
// values replace slots kv.filled of kv.keys and kv.values, and the result is [B, T, H].
func (m *Model) cachedAttention(scope *model.Scope, x *Node, kv *cachedKV, adapter Adapter) *Node {
	c := m.Config
	g := x.Graph()
	b, t := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	n, k, d := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDimension()
	grp := n / k
	capacity := kv.keys.Shape().Dimensions[3]

	qkv := m.project(rows(x), adapter,
		proj(scope, "q_proj", n*d), proj(scope, "k_proj", k*d), proj(scope, "v_proj", k*d)) // [B·T, N·D], 2 × [B·T, K·D]
	q, kk, v := qkv[0], qkv[1], qkv[2]
	q = Reshape(q, b, t, n, d)                // [B, T, N, D]
	kk = Reshape(kk, b, t, k, d)              // [B, T, K, D]
	v = Reshape(v, b, t, k, d)                // [B, T, K, D]
	q = rotary(q, kv.cos, kv.sin)             // [B, T, N, D]; per-row positions
	kk = rotary(kk, kv.cos, kv.sin)           // [B, T, K, D]
	q = MulScalar(q, 1/math.Sqrt(float64(d))) // scaled as in [Model.Attention]

	// Scatter without DynamicUpdateSlice: each slot gets at most one term of the one-hot
	// product, so the written values are exact; Where keeps the other slots untouched.
	filled := BroadcastToDims(Reshape(kv.filled, b, 1, 1, capacity), b, k, d, capacity) // [B, K, D, L]
	kv.keys = Where(filled, Einsum("btkd,btl->bkdl", kk, kv.write), kv.keys)            // [B, K, D, L]
	kv.values = Where(filled, Einsum("btkd,btl->bkdl", v, kv.write), kv.values)         // [B, K, D, L]

	// Operands are laid out [batch, cross, contracting] (or the cache's [batch, contracting,
	// cross]) so the Go backend's matmul reads the cache in place instead of transposing it.
	qg := TransposeAllAxes(Reshape(q, b, t, k, grp, d), 0, 2, 3, 1, 4) // [B, K, G, T, D]
	scores := Einsum("bkgtd,bkdl->bkgtl", qg, kv.keys)                 // [B, K, G, T, L]
	scores.AssertDims(b, k, grp, t, capacity)
	mask := BroadcastToDims(Reshape(kv.allowed, b, 1, 1, t, capacity), b, k, grp, t, capacity) // [B, K, G, T, L]
	scores = Where(mask, scores, Scalar(g, scores.DType(), lowestFinite(scores.DType())))
	probs := Softmax(scores, -1)                         // [B, K, G, T, L]
	out := Einsum("bkgtl,bkdl->bkgtd", probs, kv.values) // [B, K, G, T, D]
	out = TransposeAllAxes(out, 0, 3, 1, 2, 4)           // [B, T, K, G, D]
	out.AssertDims(b, t, k, grp, d)
	out = m.project(Reshape(out, b*t, n*d), adapter, proj(scope, "o_proj", c.HiddenSize))[0] // [B·T, H]
	return shapedAs(out, x)                                                                  // [B, T, H]
}

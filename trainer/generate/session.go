package generate

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
)

// Shape buckets: prompts are right-padded to bucket(longest, promptStep) tokens and the cache
// capacity to bucket(needed, capacityStep) slots, so calls with similar lengths reuse compiled
// graphs. A bucket wastes less than a quarter of its size (prefill work on padding tokens,
// decode work on masked slots) and there are at most eight per doubling of length.
const (
	promptStep   = 8
	capacityStep = 32
)

// bucket rounds n up to a multiple of step, step doubling from minStep while it is below n/8.
func bucket(n, minStep int) int {
	step := minStep
	for step*8 < n {
		step *= 2
	}
	return (n + step - 1) / step * step
}

// prefillKey identifies a prefill executor: the cache capacity is not an input shape.
type prefillKey struct {
	adapter  llama.Adapter
	capacity int
}

// session is one batch's decoding: its executors and its cache, which stays on the backend
// between steps (2 × layers tensors [B, K, D, L], keys then values).
type session struct {
	backend             compute.Backend
	prefillEx, decodeEx *model.Exec
	batch, promptLen    int
	cache               []*tensors.Tensor
}

// newSession returns a session for batch rows padded to promptLen tokens with a cache of
// capacity slots, creating (not yet compiling) the executors it needs. g.mu must be held.
func newSession(g *Generator, adapter llama.Adapter, batch, promptLen, capacity int) (*session, error) {
	key := prefillKey{adapter, capacity}
	if g.prefill[key] == nil {
		ex, err := g.newPrefillExec(adapter, capacity)
		if err != nil {
			return nil, fmt.Errorf("generate: prefill executor: %w", err)
		}
		g.prefill[key] = ex
	}
	if g.decode[adapter] == nil {
		ex, err := g.newDecodeExec(adapter)
		if err != nil {
			return nil, fmt.Errorf("generate: decode executor: %w", err)
		}
		g.decode[adapter] = ex
	}
	return &session{backend: g.backend, prefillEx: g.prefill[key], decodeEx: g.decode[adapter], batch: batch, promptLen: promptLen}, nil
}

// newPrefillExec maps (ids [B, P] int32, last [B] int32) to the next-token logits at each
// row's last prompt token [B, V] float32, followed by the filled cache.
func (g *Generator) newPrefillExec(adapter llama.Adapter, capacity int) (*model.Exec, error) {
	m := g.model
	return newExec(g, func(scope *model.Scope, inputs []*Node) []*Node {
		ids, last := inputs[0], inputs[1]
		gr := ids.Graph()
		scope.SetTraining(gr, true) // read current variable values, not constants baked at compile time
		b, p := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
		positions := Iota(gr, shapes.Make(dtypes.Int32, b, p), 1) // [B, P]: right padding, position = index
		hidden, cache := m.ForwardCached(scope, ids, positions, m.ZeroKVCache(gr, b, capacity), adapter)
		rows := Iota(gr, shapes.Make(dtypes.Int32, b), 0)   // [B]
		h := Gather(hidden, Stack([]*Node{rows, last}, -1)) // [B, H]
		return append([]*Node{lastLogits(m, scope, h)}, append(cache.Keys, cache.Values...)...)
	})
}

// newDecodeExec maps (ids [B, 1] int32, positions [B, 1] int32, cache...) to the next-token
// logits [B, V] float32, followed by the updated cache.
func (g *Generator) newDecodeExec(adapter llama.Adapter) (*model.Exec, error) {
	m := g.model
	layers := m.Config.NumHiddenLayers
	return newExec(g, func(scope *model.Scope, inputs []*Node) []*Node {
		ids, positions := inputs[0], inputs[1]
		scope.SetTraining(ids.Graph(), true)
		cache := llama.KVCache{Keys: inputs[2 : 2+layers], Values: inputs[2+layers : 2+2*layers]}
		hidden, next := m.ForwardCached(scope, ids, positions, cache, adapter) // [B, 1, H]
		b := ids.Shape().Dimensions[0]
		h := Reshape(hidden, b, m.Config.HiddenSize) // [B, H]
		return append([]*Node{lastLogits(m, scope, h)}, append(next.Keys, next.Values...)...)
	})
}

// newExec returns an executor of fn with no limit on its compiled graphs: their number is
// bounded by the batch sizes and the length buckets, and GoMLX's default of 32 would fail,
// not evict, past the limit.
func newExec(g *Generator, fn func(scope *model.Scope, inputs []*Node) []*Node) (*model.Exec, error) {
	ex, err := model.NewExec(g.backend, g.store, fn)
	if err != nil {
		return nil, err
	}
	return ex.SetMaxCache(-1), nil
}

// lastLogits is the float32 logits [B, V] of hidden states h [B, H].
func lastLogits(m *llama.Model, scope *model.Scope, h *Node) *Node {
	logits := m.LMHead(scope, h) // [B, V]
	if logits.DType() != dtypes.Float32 {
		logits = ConvertDType(logits, dtypes.Float32)
	}
	return logits
}

// prefill runs the prompts (unpadded, 1 ≤ len ≤ promptLen) and returns each row's logits.
func (s *session) prefill(prompts [][]int) ([][]float32, error) {
	ids := make([]int32, s.batch*s.promptLen) // padding id 0: any valid id, never attended
	last := make([]int32, s.batch)
	for i, p := range prompts {
		for j, id := range p {
			ids[i*s.promptLen+j] = int32(id)
		}
		last[i] = int32(len(p) - 1)
	}
	out, err := s.prefillEx.Exec(
		tensors.FromFlatDataAndDimensions(ids, s.batch, s.promptLen),
		tensors.FromFlatDataAndDimensions(last, s.batch))
	if err != nil {
		return nil, fmt.Errorf("generate: prefill: %w", err)
	}
	return s.take(out)
}

// step feeds one token per row at the given positions and returns each row's next logits.
func (s *session) step(feed, positions []int32) ([][]float32, error) {
	args := make([]any, 0, 2+len(s.cache))
	args = append(args,
		tensors.FromFlatDataAndDimensions(feed, s.batch, 1),
		tensors.FromFlatDataAndDimensions(positions, s.batch, 1))
	for _, t := range s.cache {
		// The old cache is dead after this step: donating it lets the backend reuse its memory.
		d, err := DonateTensorBuffer(t, s.backend, 0)
		if err != nil {
			return nil, fmt.Errorf("generate: decode step: %w", err)
		}
		args = append(args, d)
	}
	s.cache = nil
	out, err := s.decodeEx.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("generate: decode step: %w", err)
	}
	return s.take(out)
}

// take keeps the cache outputs and returns the logits rows.
func (s *session) take(out []*tensors.Tensor) ([][]float32, error) {
	logits := out[0]
	s.cache = out[1:]
	flat, err := tensors.CopyFlatData[float32](logits)
	if err != nil {
		return nil, fmt.Errorf("generate: logits: %w", err)
	}
	logits.MustFinalizeAll()
	v := len(flat) / s.batch
	rows := make([][]float32, s.batch)
	for i := range rows {
		rows[i] = flat[i*v : (i+1)*v]
	}
	return rows, nil
}

// close releases the cache now rather than at garbage collection: it can be large.
func (s *session) close() {
	for _, t := range s.cache {
		_ = t.FinalizeAll()
	}
	s.cache = nil
}

// Package fanout holds the two pieces every LLM stage of recipe-DPO uses to call a model
// concurrently from Beam: a stable batch key (records are grouped into batches by a
// GroupByKey, which also checkpoints the calls' inputs) and a bounded parallel map over a
// batch.
package fanout

import (
	"context"
	"hash/fnv"

	"golang.org/x/sync/errgroup"
)

// BatchKey spreads records over n batches by a stable hash of their id.
func BatchKey(id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// Batches is how many batches n records of at most size each make (at least 1).
func Batches(n, size int) int {
	if size <= 0 {
		return 1
	}
	return max(1, (n+size-1)/size)
}

// Run calls fn for i in [0, n) with at most limit in flight. fn records its own per-item
// failures; Run stops early only when ctx ends, and then returns ctx's error.
func Run(ctx context.Context, n, limit int, fn func(ctx context.Context, i int)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, limit))
	for i := range n {
		g.Go(func() error {
			fn(gctx, i)
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

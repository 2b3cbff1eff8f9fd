package fanout

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestBatchKey(t *testing.T) {
	for _, id := range []string{"a", "persona_b-00001", ""} {
		if BatchKey(id, 7) != BatchKey(id, 7) || BatchKey(id, 7) >= 7 || BatchKey(id, 1) != 0 {
			t.Errorf("BatchKey(%q) unstable or out of range", id)
		}
	}
	if got := Batches(10, 4); got != 3 {
		t.Errorf("Batches(10, 4) = %d, want 3", got)
	}
	if got := Batches(0, 4); got != 1 {
		t.Errorf("Batches(0, 4) = %d, want 1", got)
	}
}

func TestRunBoundsConcurrency(t *testing.T) {
	var inFlight, peak, done atomic.Int64
	err := Run(context.Background(), 20, 3, func(ctx context.Context, i int) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		inFlight.Add(-1)
		done.Add(1)
	})
	if err != nil || done.Load() != 20 || peak.Load() > 3 {
		t.Errorf("Run: err %v, done %d, peak %d; want nil, 20, ≤ 3", err, done.Load(), peak.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Run(ctx, 5, 2, func(context.Context, int) {}); err == nil {
		t.Error("Run(canceled) = nil, want the context's error")
	}
}

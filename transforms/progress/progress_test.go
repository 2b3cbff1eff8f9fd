package progress

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLines(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	var gen, judge atomic.Int64
	r := newReporter(&buf, time.Second, func() time.Time { return now }, []Task{
		{Name: "generate", Total: 100, Done: gen.Load},
		{Name: "label", Done: judge.Load},
	})
	r.tick() // nothing finished: no lines
	if buf.Len() != 0 {
		t.Fatalf("printed before any progress: %q", buf.String())
	}
	gen.Store(10)
	r.tick()
	now = t0.Add(10 * time.Second)
	gen.Store(30) // 20 units in 10 s: 2/s, 70 left: 35 s
	r.tick()
	now = t0.Add(20 * time.Second)
	r.tick() // unchanged: no line
	judge.Store(4)
	gen.Store(100)
	r.tick()
	want := []string{
		"generate 10/100 (10%)",
		"generate 30/100 (30%), 2.0/s, ETA 35s",
		"generate 100/100 (100%), 4.5/s",
		"label 4",
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestStartStop(t *testing.T) {
	var buf syncBuffer
	var n atomic.Int64
	n.Store(3)
	r := Start(context.Background(), &buf, time.Second, Task{Name: "x", Total: 5, Done: n.Load})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "x 3/5") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	r.Stop()
	r.Stop() // idempotent
	if !strings.Contains(buf.String(), "x 3/5 (60%)") {
		t.Errorf("output %q lacks the task's line", buf.String())
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

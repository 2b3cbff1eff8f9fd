package llm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// okCall is an AttemptFunc that succeeds at once and records when it ran.
func okCall(now func() time.Time, at *[]time.Time, mu *sync.Mutex) AttemptFunc {
	return func(context.Context) (Result, error) {
		mu.Lock()
		*at = append(*at, now())
		mu.Unlock()
		return Result{Body: []byte("{}")}, nil
	}
}

func TestRPMSpacesRequests(t *testing.T) {
	clock := newFakeClock()
	l := fastLimits()
	l.RPM = 60 // one request per second
	c := testCaller(t, l, nil, WithClock(clock.now), WithSleep(clock.sleep))
	var (
		at []time.Time
		mu sync.Mutex
	)
	for range 5 {
		if _, _, err := c.Do(context.Background(), "", 1, okCall(clock.now, &at, &mu)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < time.Second-time.Millisecond {
			t.Errorf("gap between calls %d and %d: got %s, want >= 1s", i-1, i, gap)
		}
	}
	if total := at[len(at)-1].Sub(at[0]); total > 4*time.Second+10*time.Millisecond {
		t.Errorf("5 calls at 60 RPM took %s of fake time, want about 4s", total)
	}
}

func TestTPMChargesEstimatedTokens(t *testing.T) {
	clock := newFakeClock()
	l := fastLimits()
	l.TPM = 600 // 10 tokens/s, burst one minute = 600
	c := testCaller(t, l, nil, WithClock(clock.now), WithSleep(clock.sleep))
	var (
		at []time.Time
		mu sync.Mutex
	)
	for range 3 {
		if _, _, err := c.Do(context.Background(), "", 300, okCall(clock.now, &at, &mu)); err != nil {
			t.Fatal(err)
		}
	}
	// The burst admits two 300-token calls; the third waits 30 s for 300 more tokens.
	if gap := at[1].Sub(at[0]); gap > time.Millisecond {
		t.Errorf("second call waited %s, want no wait (within the burst)", gap)
	}
	if gap := at[2].Sub(at[1]); gap < 29*time.Second || gap > 31*time.Second {
		t.Errorf("third call waited %s, want about 30s", gap)
	}
	// A call larger than a minute of tokens is charged one minute, not refused.
	if _, _, err := c.Do(context.Background(), "", 10_000, okCall(clock.now, &at, &mu)); err != nil {
		t.Errorf("oversized call: got %v, want success", err)
	}
}

func TestRPMRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time rate test")
	}
	l := fastLimits()
	l.RPM = 1200 // 20/s: 50 ms apart
	c := testCaller(t, l, nil)
	start := time.Now()
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			c.Do(context.Background(), "", 1, func(context.Context) (Result, error) { return Result{}, nil })
		})
	}
	wg.Wait()
	// 6 requests at 20/s need 5 gaps of 50 ms; allow for scheduling noise both ways.
	if el := time.Since(start); el < 200*time.Millisecond || el > 1500*time.Millisecond {
		t.Errorf("6 concurrent calls at 1200 RPM took %s, want about 250ms", el)
	}
}

func TestConcurrencyBound(t *testing.T) {
	l := fastLimits()
	l.Concurrency = 3
	c := testCaller(t, l, nil)
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			c.Do(context.Background(), "", 1, func(context.Context) (Result, error) {
				n := inFlight.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(20 * time.Millisecond)
				inFlight.Add(-1)
				return Result{}, nil
			})
		})
	}
	wg.Wait()
	if got := peak.Load(); got > 3 || got < 2 {
		t.Errorf("peak in-flight calls: got %d, want 3 (at most the Concurrency)", got)
	}
}

func TestSharedCallersShareOneGate(t *testing.T) {
	l := fastLimits()
	a := Shared("TestShared-judge", l, nil)
	b := Shared("TestShared-judge", l, NewMemCache())
	other := Shared("TestShared-generator", l, nil)
	l2 := l
	l2.RPM = 30
	slower := Shared("TestShared-judge", l2, nil)
	if a.Stats() != b.Stats() {
		t.Errorf("same name and limits: got separate Stats, want one shared")
	}
	if a.g != b.g {
		t.Errorf("same name and limits: got separate limiters, want one shared")
	}
	if b.cache == nil || a.cache != nil {
		t.Errorf("caches: got a=%v b=%v, want each Caller to keep its own", a.cache, b.cache)
	}
	if a.Stats() == other.Stats() || a.Stats() == slower.Stats() {
		t.Errorf("different name or limits: got shared Stats, want separate")
	}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Limits)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*Limits) {}, ""},
		{"tpm unlimited", func(l *Limits) { l.TPM = 0 }, ""},
		{"rpm zero", func(l *Limits) { l.RPM = 0 }, "--rpm must be > 0"},
		{"tpm negative", func(l *Limits) { l.TPM = -1 }, "--tpm must be >= 0"},
		{"concurrency", func(l *Limits) { l.Concurrency = 0 }, "--concurrency must be >= 1"},
		{"retries", func(l *Limits) { l.MaxRetries = -1 }, "--max_retries must be >= 0"},
		{"timeout", func(l *Limits) { l.Timeout = 0 }, "--timeout must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := DefaultLimits()
			tt.mutate(&l)
			err := l.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := NewCaller("x", Limits{}, nil); err == nil {
		t.Errorf("NewCaller with zero Limits: got nil error, want one")
	}
}

func TestEstimateCost(t *testing.T) {
	tests := []struct {
		model     string
		in, out   int64
		want      float64
		wantKnown bool
	}{
		{"llama-3.3-70b-versatile", 1_000_000, 1_000_000, 0.59 + 0.79, true},
		{"llama-3.1-8b-instant", 2_000_000, 0, 0.10, true},
		{"models/gemini-2.0-flash", 1_000_000, 500_000, 0.10 + 0.20, true},
		{"sft", 1_000_000, 1_000_000, 0, false},
	}
	for _, tt := range tests {
		got, known := EstimateCost(tt.model, tt.in, tt.out)
		if known != tt.wantKnown || got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("EstimateCost(%s): got %g, %v; want %g, %v", tt.model, got, known, tt.want, tt.wantKnown)
		}
	}
}

// TestSharedDone: every finished call counts once, whatever its outcome, summed over the
// gates of one name.
func TestSharedDone(t *testing.T) {
	l := fastLimits()
	l2 := l
	l2.RPM = 30
	cache := NewMemCache()
	a := Shared("TestSharedDone", l, cache)
	b := Shared("TestSharedDone", l2, nil)
	other := Shared("TestSharedDone-other", l, nil)
	ok := func(context.Context) (Result, error) { return Result{Body: []byte("x")}, nil }
	bad := func(context.Context) (Result, error) { return Result{}, errors.New("final") }
	ctx := context.Background()
	a.Do(ctx, "k", 0, ok) // success
	a.Do(ctx, "k", 0, ok) // cache hit
	b.Do(ctx, "", 0, bad) // failure
	other.Do(ctx, "", 0, ok)
	if got := SharedDone("TestSharedDone"); got != 3 {
		t.Errorf("SharedDone = %d, want 3 (success, hit, failure)", got)
	}
	if got := SharedDone("TestSharedDone-none"); got != 0 {
		t.Errorf("SharedDone of an unknown name = %d, want 0", got)
	}
}

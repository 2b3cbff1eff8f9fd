package llm

import (
	"context"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// gate is the shared, process-wide part of a Caller: the request and token limiters, the
// concurrency semaphore and the counters. Callers made by Shared with the same name and
// limits share one gate, so that every Beam DoFn instance in a worker process draws from
// the same budget.
type gate struct {
	limits Limits
	rpm    *rate.Limiter
	tpm    *rate.Limiter // nil when TPM is 0 (unlimited)
	sem    chan struct{}
	stats  Stats
}

// newGate builds the limiters for l, which must be valid.
//
// The request limiter has a burst of 1: requests are spaced evenly (2 s apart at 30 RPM)
// instead of a minute's worth leaving at once and tripping the server's own window. The
// token limiter's burst is one minute of tokens, which is what a per-minute server window
// admits.
func newGate(l Limits) *gate {
	g := &gate{
		limits: l,
		rpm:    rate.NewLimiter(rate.Limit(l.RPM/60), 1),
		sem:    make(chan struct{}, l.Concurrency),
	}
	if l.TPM > 0 {
		g.tpm = rate.NewLimiter(rate.Limit(l.TPM/60), max(1, int(math.Min(l.TPM, math.MaxInt32))))
	}
	return g
}

// EstimateTokens is the token count the TPM limiter charges before a call, when the real
// usage is not known yet: about 4 characters per prompt token plus the completion budget.
func EstimateTokens(promptChars, maxTokens int) int {
	return promptChars/4 + max(maxTokens, 0)
}

// acquire takes a concurrency slot and then waits until the limiters admit one request of
// the given estimated tokens. Taking the slot first keeps the spacing the limiter computed:
// a request that waited for its rate slot does not then also queue for a free slot.
// The returned func releases the slot.
func (g *gate) acquire(ctx context.Context, tokens int, now func() time.Time, sleep SleepFunc) (func(), error) {
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release := func() { <-g.sem }

	t := now()
	reqs := g.rpm.ReserveN(t, 1)
	delay := reqs.DelayFrom(t)
	var toks *rate.Reservation
	if g.tpm != nil {
		// A request larger than a minute of tokens could never be admitted; charging it a
		// full minute slows it down as much as the server would without deadlocking.
		toks = g.tpm.ReserveN(t, min(max(tokens, 1), g.tpm.Burst()))
		delay = max(delay, toks.DelayFrom(t))
	}
	if delay > 0 {
		if err := sleep(ctx, delay); err != nil {
			t := now()
			reqs.CancelAt(t)
			if toks != nil {
				toks.CancelAt(t)
			}
			release()
			return nil, err
		}
	}
	return release, nil
}

// SleepFunc waits for d or until ctx is done, returning ctx.Err() in that case. Tests
// inject one that records the durations and returns at once.
type SleepFunc func(ctx context.Context, d time.Duration) error

// realSleep is the production SleepFunc.
func realSleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

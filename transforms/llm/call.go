// Package llm is the one implementation of calling an LLM that every client in recipe-DPO
// uses: the data-preparation generator, the Groq preference labeller and the evaluation
// judge. A Caller combines
//
//   - client-side rate limiting (requests and estimated tokens per minute) and a bound on
//     requests in flight, shared process-wide by name (Shared);
//   - retries with exponential backoff and full jitter that honour Retry-After, with a
//     timeout per attempt;
//   - a content-addressed cache of successful answers (Cache, CacheKey), so re-runs are
//     free and byte-identical;
//   - counters (Stats) and a price table (EstimateCost).
//
// On top of it sit small interfaces with OpenAI-compatible implementations (Groq, vLLM):
// Generator for recipe variants and PairJudge for preference labels. The package logs
// nothing by default and never stores API keys outside the HTTP client that sends them.
package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Stats counts what a Caller did. Callers that share a gate (Shared) share their Stats.
type Stats struct {
	Calls            atomic.Int64 // real attempts sent to the endpoint, retries included
	CacheHits        atomic.Int64 // calls answered from the cache
	Retries          atomic.Int64 // attempts after the first
	Failures         atomic.Int64 // calls that returned an error
	CacheErrors      atomic.Int64 // cache reads or writes that failed (the call went on)
	PromptTokens     atomic.Int64 // usage reported by the endpoint, cache hits excluded
	CompletionTokens atomic.Int64
	// Done counts finished calls, whatever the outcome (cache hit, success or failure): the
	// numerator of a job's progress (transforms/progress).
	Done atomic.Int64
}

// StatsSnapshot is a point-in-time copy of Stats, for logs and the run manifest.
type StatsSnapshot struct {
	Calls            int64 `json:"calls"`
	CacheHits        int64 `json:"cache_hits"`
	Retries          int64 `json:"retries"`
	Failures         int64 `json:"failures"`
	CacheErrors      int64 `json:"cache_errors"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// Done is live progress only; manifests do not record it.
	Done int64 `json:"-"`
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Calls: s.Calls.Load(), CacheHits: s.CacheHits.Load(), Retries: s.Retries.Load(),
		Failures: s.Failures.Load(), CacheErrors: s.CacheErrors.Load(),
		PromptTokens: s.PromptTokens.Load(), CompletionTokens: s.CompletionTokens.Load(),
		Done: s.Done.Load(),
	}
}

// Result is what one successful attempt produced. Body is returned to the caller and
// stored in the cache as is, so it must hold everything a replay needs (usage, latency).
type Result struct {
	Body                           []byte
	PromptTokens, CompletionTokens int64
}

// AttemptFunc makes one attempt. ctx carries the attempt's timeout. Errors are classified
// for retry by retryable: return *APIError for HTTP errors, context and network errors as
// they come; anything else (a bad verdict, say) is final.
type AttemptFunc func(ctx context.Context) (Result, error)

// Caller runs LLM calls under limits, with retries and a cache. It is safe for concurrent
// use; its zero value is not usable: build one with NewCaller or Shared.
type Caller struct {
	name  string
	g     *gate
	cache Cache
	log   *slog.Logger
	sleep SleepFunc
	now   func() time.Time
}

// Option configures a Caller.
type Option func(*Caller)

// WithLogger makes the Caller log retries (Debug) and cache errors (Warn) to l.
func WithLogger(l *slog.Logger) Option { return func(c *Caller) { c.log = l } }

// WithSleep replaces the function that waits for backoffs and rate-limit slots; tests
// inject one that records durations and returns at once.
func WithSleep(s SleepFunc) Option { return func(c *Caller) { c.sleep = s } }

// WithClock replaces time.Now for the rate limiters and HTTP-date Retry-After values.
func WithClock(now func() time.Time) Option { return func(c *Caller) { c.now = now } }

// NewCaller returns a Caller with its own limiters, semaphore and Stats. cache may be nil
// (no caching). name appears in errors and logs.
func NewCaller(name string, l Limits, cache Cache, opts ...Option) (*Caller, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("llm %s: %w", name, err)
	}
	return newCaller(name, newGate(l), cache, opts), nil
}

func newCaller(name string, g *gate, cache Cache, opts []Option) *Caller {
	c := &Caller{name: name, g: g, cache: cache, sleep: realSleep, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

type sharedKey struct {
	name   string
	limits Limits
}

var (
	sharedMu    sync.Mutex
	sharedGates = map[sharedKey]*gate{}
)

// Shared returns a Caller whose limiters, semaphore and Stats are shared by every Caller
// that Shared returned for the same name and limits in this process: many Beam DoFn
// instances in one worker then respect one budget together. The cache and options are
// the caller's own (two pipelines in one test process may cache in different places).
// It panics on invalid limits: launchers validate them right after flag parsing.
func Shared(name string, l Limits, cache Cache, opts ...Option) *Caller {
	if err := l.Validate(); err != nil {
		panic(fmt.Sprintf("llm.Shared(%q): %v", name, err))
	}
	sharedMu.Lock()
	g, ok := sharedGates[sharedKey{name, l}]
	if !ok {
		g = newGate(l)
		sharedGates[sharedKey{name, l}] = g
	}
	sharedMu.Unlock()
	return newCaller(name, g, cache, opts)
}

// SharedDone returns how many calls have finished so far, in this process, on every
// Caller that Shared returned for name (whatever its limits). Launchers on the local runner,
// whose DoFns run in the launcher's process, read it to show a job's progress.
func SharedDone(name string) int64 {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	var n int64
	for k, g := range sharedGates {
		if k.name == name {
			n += g.stats.Done.Load()
		}
	}
	return n
}

// Name returns the name the Caller was built with.
func (c *Caller) Name() string { return c.name }

// Limits returns the Caller's limits.
func (c *Caller) Limits() Limits { return c.g.limits }

// Stats returns the live counters (shared with other Callers of the same gate).
func (c *Caller) Stats() *Stats { return &c.g.stats }

// Do answers from the cache when key is non-empty and cached; otherwise it runs call under
// the limits, retrying as the error allows, and caches a successful Body under key.
// estTokens is the TPM charge (see EstimateTokens). hit reports a cache answer.
//
// Cache failures are logged and counted but do not fail the call: the cache saves money,
// it is not the source of truth.
func (c *Caller) Do(ctx context.Context, key string, estTokens int, call AttemptFunc) (body []byte, hit bool, err error) {
	bodies, hits, err := c.DoBatch(ctx, []string{key}, estTokens, func(ctx context.Context, _ []int) ([]Result, error) {
		res, err := call(ctx)
		return []Result{res}, err
	})
	return bodies[0], hits[0], err
}

// BatchFunc answers the requests at the given indices of a DoBatch call in one attempt, one
// Result per index, in order.
type BatchFunc func(ctx context.Context, missing []int) ([]Result, error)

// DoBatch is Do for a call that answers several keys at once (an in-process model decoding a
// batch): keys found in the cache are answered from it, the others by one call under the
// limits and retries, whose Results are cached under their keys. It returns a body per key
// and which were cache hits; on error, the keys that were not hits have no body. Every key
// counts as a finished call in Stats.Done. Empty keys are never cached. estTokens is the
// call's TPM charge (see EstimateTokens).
func (c *Caller) DoBatch(ctx context.Context, keys []string, estTokens int, call BatchFunc) (bodies [][]byte, hits []bool, err error) {
	defer c.g.stats.Done.Add(int64(len(keys)))
	bodies, hits = make([][]byte, len(keys)), make([]bool, len(keys))
	var missing []int
	for i, key := range keys {
		if c.cache != nil && key != "" {
			v, ok, err := c.cache.Get(ctx, key)
			switch {
			case err != nil:
				c.g.stats.CacheErrors.Add(1)
				c.log.Warn("llm cache read failed; calling the endpoint", "caller", c.name, "key", key, "error", err)
			case ok:
				c.g.stats.CacheHits.Add(1)
				bodies[i], hits[i] = v, true
				continue
			}
		}
		missing = append(missing, i)
	}
	if len(missing) == 0 {
		return bodies, hits, nil
	}
	var results []Result
	_, err = c.retry(ctx, estTokens, func(ctx context.Context) (Result, error) {
		rs, err := call(ctx, missing)
		if err == nil && len(rs) != len(missing) {
			err = fmt.Errorf("batch call returned %d results for %d requests", len(rs), len(missing))
		}
		results = rs
		return Result{}, err
	})
	if err != nil {
		c.g.stats.Failures.Add(int64(len(missing)))
		return bodies, hits, err
	}
	for j, i := range missing {
		res := results[j]
		bodies[i] = res.Body
		c.g.stats.PromptTokens.Add(res.PromptTokens)
		c.g.stats.CompletionTokens.Add(res.CompletionTokens)
		if c.cache != nil && keys[i] != "" {
			if err := c.cache.Put(ctx, keys[i], res.Body); err != nil {
				c.g.stats.CacheErrors.Add(1)
				c.log.Warn("llm cache write failed", "caller", c.name, "key", keys[i], "error", err)
			}
		}
	}
	return bodies, hits, nil
}

// retry runs attempts until one succeeds, one fails for good, or MaxRetries is spent.
func (c *Caller) retry(ctx context.Context, estTokens int, call AttemptFunc) (Result, error) {
	l := c.g.limits
	jsonRetried := false
	for attempt := 0; ; attempt++ {
		release, err := c.g.acquire(ctx, estTokens, c.now, c.sleep)
		if err != nil {
			return Result{}, fmt.Errorf("llm %s: waiting for a rate-limit slot: %w", c.name, err)
		}
		c.g.stats.Calls.Add(1)
		actx, cancel := context.WithTimeout(ctx, l.Timeout)
		res, err := call(actx)
		cancel()
		release()
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			// The job (or the record's deadline) ended the call, not the endpoint.
			return Result{}, fmt.Errorf("llm %s: attempt %d: %w", c.name, attempt+1, ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("attempt timed out after %s (--timeout): %w", l.Timeout, err)
		}
		ok, after := retryable(err, jsonRetried)
		if !ok {
			return Result{}, fmt.Errorf("llm %s: attempt %d, not retryable (%s): %w", c.name, attempt+1, Classify(err), err)
		}
		if attempt >= l.MaxRetries {
			return Result{}, fmt.Errorf("llm %s: giving up after %d attempts (%s): %w", c.name, attempt+1, Classify(err), err)
		}
		if Classify(err) == ClassJSONValidateFailed {
			jsonRetried = true
		}
		d := backoff(attempt, l.MaxBackoff, after)
		c.g.stats.Retries.Add(1)
		c.log.Debug("llm retry", "caller", c.name, "attempt", attempt+1, "class", Classify(err), "wait", d, "error", err)
		if serr := c.sleep(ctx, d); serr != nil {
			return Result{}, fmt.Errorf("llm %s: backing off after attempt %d: %w (last error: %v)", c.name, attempt+1, serr, err)
		}
	}
}

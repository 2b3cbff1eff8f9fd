package llm

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

// testKey is the API key the fake server expects; tests check it never leaks.
const testKey = "gsk_TEST_SECRET_never_log_me_42"

// fastLimits lets tests run without rate-limit waits; backoffs go to a recorder anyway.
func fastLimits() Limits {
	return Limits{RPM: 1e6, TPM: 0, Concurrency: 8, MaxRetries: 3, Timeout: 2 * time.Second, MaxBackoff: 50 * time.Millisecond}
}

// sleepRecorder is an injected SleepFunc that records durations and returns at once.
type sleepRecorder struct {
	mu sync.Mutex
	ds []time.Duration
}

func (r *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.ds = append(r.ds, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *sleepRecorder) max() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m time.Duration
	for _, d := range r.ds {
		m = max(m, d)
	}
	return m
}

// fakeClock is an injected clock whose sleep advances time instead of waiting.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

// testCaller builds a Caller or fails the test.
func testCaller(t testing.TB, l Limits, cache Cache, opts ...Option) *Caller {
	t.Helper()
	c, err := NewCaller(t.Name(), l, cache, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startServer runs llmtest with the test key.
func startServer(t testing.TB, cfg llmtest.Config) *llmtest.Server {
	t.Helper()
	cfg.APIKey = testKey
	return llmtest.Start(t, cfg)
}

// genReq is a typical variant request.
func genReq() GenerateRequest {
	return GenerateRequest{
		Model: "sft", System: "You are a Korean home cook.", User: "Create a recipe using tofu and kimchi.",
		Temperature: 0.7, TopP: 0.9, MaxTokens: 512, Seed: 42,
	}
}

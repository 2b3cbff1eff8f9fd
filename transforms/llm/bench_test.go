package llm

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

// fanOut sends n distinct generation requests through gen with at most par goroutines
// (the Caller's own semaphore is the real bound) and returns the wall time.
func fanOut(b *testing.B, gen Generator, n, par int, tag string) time.Duration {
	b.Helper()
	ctx := context.Background()
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range par {
		wg.Go(func() {
			for i := range work {
				req := genReq()
				req.User = fmt.Sprintf("%s request %d", tag, i)
				if _, err := gen.Generate(ctx, req); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	el := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return el
}

// BenchmarkFanOut measures the Caller against a fake endpoint with 100 ms latency:
//
//   - rate_limited: at --rpm 1200 (20 req/s) and --concurrency 32, the achieved request
//     rate as a fraction of the configured one (ratio_to_limit; target >= 0.9).
//   - concurrent: with a limit far above demand and --concurrency 64, 256 requests against
//     a one-at-a-time loop (speedup_vs_sequential; target >= 20). The sequential time is
//     measured on 16 requests and scaled, to keep an iteration under 15 s.
//
// Metrics are reported, never asserted: run with -bench FanOut -benchtime 1x.
func BenchmarkFanOut(b *testing.B) {
	const latency = 100 * time.Millisecond
	srv := llmtest.Start(b, llmtest.Config{Latency: latency, APIKey: testKey})

	b.Run("rate_limited", func(b *testing.B) {
		const n = 100
		l := Limits{RPM: 1200, Concurrency: 32, MaxRetries: 2, Timeout: 10 * time.Second, MaxBackoff: time.Second}
		var total time.Duration
		for i := 0; b.Loop(); i++ {
			caller := testCaller(b, l, nil)
			total += fanOut(b, NewOpenAIGenerator(srv.URL, testKey, caller), n, 64, fmt.Sprintf("rl%d", i))
		}
		perSec := float64(n*b.N) / total.Seconds()
		b.ReportMetric(perSec, "req/s")
		b.ReportMetric(perSec/(l.RPM/60), "ratio_to_limit")
	})

	b.Run("concurrent", func(b *testing.B) {
		const n, nSeq = 256, 16
		l := Limits{RPM: 1e7, Concurrency: 64, MaxRetries: 2, Timeout: 10 * time.Second, MaxBackoff: time.Second}
		var conc, seq time.Duration
		for i := 0; b.Loop(); i++ {
			caller := testCaller(b, l, nil)
			conc += fanOut(b, NewOpenAIGenerator(srv.URL, testKey, caller), n, 256, fmt.Sprintf("c%d", i))
			one := l
			one.Concurrency = 1
			seq += fanOut(b, NewOpenAIGenerator(srv.URL, testKey, testCaller(b, one, nil)), nSeq, 1, fmt.Sprintf("s%d", i))
		}
		seqPerReq := seq.Seconds() / float64(nSeq*b.N)
		concPerReq := conc.Seconds() / float64(n*b.N)
		b.ReportMetric(float64(n)/(conc.Seconds()/float64(b.N)), "req/s")
		b.ReportMetric(seqPerReq/concPerReq, "speedup_vs_sequential")
	})
}

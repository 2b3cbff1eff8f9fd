package llm

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name      string
		faults    []*llmtest.Fault
		wantCalls int64
		wantClass string // "" = success
		minSleep  time.Duration
		wantInErr string
	}{
		{name: "429 honours Retry-After", faults: []*llmtest.Fault{llmtest.RateLimited(3 * time.Second)}, wantCalls: 2, minSleep: 3 * time.Second},
		{name: "500 retried", faults: []*llmtest.Fault{llmtest.ServerError()}, wantCalls: 2},
		{name: "503 twice retried", faults: []*llmtest.Fault{llmtest.Unavailable(), llmtest.Unavailable()}, wantCalls: 3},
		{name: "408 retried", faults: []*llmtest.Fault{{Status: http.StatusRequestTimeout, Message: "timeout"}}, wantCalls: 2},
		{name: "attempt timeout retried", faults: []*llmtest.Fault{llmtest.Slow(5 * time.Second)}, wantCalls: 2},
		{name: "400 not retried", faults: []*llmtest.Fault{llmtest.BadRequest("messages: too long")}, wantCalls: 1, wantClass: ClassBadRequest, wantInErr: "not retryable"},
		{name: "json_validate_failed retried once", faults: []*llmtest.Fault{llmtest.JSONValidateFailed()}, wantCalls: 2},
		{name: "json_validate_failed twice fails", faults: []*llmtest.Fault{llmtest.JSONValidateFailed(), llmtest.JSONValidateFailed()}, wantCalls: 2, wantClass: ClassJSONValidateFailed},
		{
			name:      "429 exhausts retries",
			faults:    []*llmtest.Fault{llmtest.RateLimited(time.Second), llmtest.RateLimited(time.Second), llmtest.RateLimited(time.Second), llmtest.RateLimited(time.Second)},
			wantCalls: 4, wantClass: ClassRateLimited, wantInErr: "giving up after 4 attempts",
		},
		{
			name:      "500 exhausts retries",
			faults:    []*llmtest.Fault{llmtest.ServerError(), llmtest.ServerError(), llmtest.ServerError(), llmtest.ServerError()},
			wantCalls: 4, wantClass: ClassServerError,
		},
		{name: "404 unknown adapter", faults: []*llmtest.Fault{llmtest.ModelNotFound("sft")}, wantCalls: 1, wantClass: ClassModelNotFound, wantInErr: `model "sft" not served at http://127.0.0.1`},
		{name: "429 past a daily quota not retried", faults: []*llmtest.Fault{llmtest.RateLimited(2 * time.Hour)}, wantCalls: 1, wantClass: ClassRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, llmtest.Config{})
			srv.Enqueue(tt.faults...)
			rec := &sleepRecorder{}
			l := fastLimits()
			l.Timeout = 200 * time.Millisecond
			caller := testCaller(t, l, nil, WithSleep(rec.sleep))
			gen := NewOpenAIGenerator(srv.URL, testKey, caller)

			resp, err := gen.Generate(context.Background(), genReq())
			if got := srv.Requests(); got != tt.wantCalls {
				t.Errorf("server requests: got %d, want %d", got, tt.wantCalls)
			}
			if got := caller.Stats().Calls.Load(); got != tt.wantCalls {
				t.Errorf("Stats.Calls: got %d, want %d", got, tt.wantCalls)
			}
			if got := caller.Stats().Retries.Load(); got != tt.wantCalls-1 {
				t.Errorf("Stats.Retries: got %d, want %d", got, tt.wantCalls-1)
			}
			if got := Classify(err); got != tt.wantClass {
				t.Fatalf("Classify(%v): got %q, want %q", err, got, tt.wantClass)
			}
			if tt.wantClass == "" && resp.Text != "ok" {
				t.Errorf("text: got %q, want %q", resp.Text, "ok")
			}
			if tt.wantClass != "" && caller.Stats().Failures.Load() != 1 {
				t.Errorf("Stats.Failures: got %d, want 1", caller.Stats().Failures.Load())
			}
			if tt.wantInErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantInErr)) {
				t.Errorf("error: got %v, want it to contain %q", err, tt.wantInErr)
			}
			if got := rec.max(); got < tt.minSleep {
				t.Errorf("longest sleep: got %s, want >= %s", got, tt.minSleep)
			}
		})
	}
}

func TestNoRetryOnUnauthorized(t *testing.T) {
	srv := startServer(t, llmtest.Config{})
	caller := testCaller(t, fastLimits(), nil, WithSleep((&sleepRecorder{}).sleep))
	_, err := NewOpenAIGenerator(srv.URL, "wrong-key", caller).Generate(context.Background(), genReq())
	if got := Classify(err); got != ClassAuth {
		t.Errorf("Classify: got %q, want %q (err %v)", got, ClassAuth, err)
	}
	if got := srv.Requests(); got != 1 {
		t.Errorf("requests: got %d, want 1", got)
	}
}

func TestRetryConnectionRefused(t *testing.T) {
	srv := llmtest.New(llmtest.Config{})
	url := srv.URL
	srv.Close() // nothing listens any more
	rec := &sleepRecorder{}
	caller := testCaller(t, fastLimits(), nil, WithSleep(rec.sleep))
	_, err := NewOpenAIGenerator(url, testKey, caller).Generate(context.Background(), genReq())
	if got := Classify(err); got != ClassConnection {
		t.Errorf("Classify: got %q, want %q (err %v)", got, ClassConnection, err)
	}
	if got, want := caller.Stats().Calls.Load(), int64(fastLimits().MaxRetries+1); got != want {
		t.Errorf("attempts: got %d, want %d", got, want)
	}
}

func TestCanceledDuringBackoff(t *testing.T) {
	srv := startServer(t, llmtest.Config{})
	srv.Enqueue(llmtest.ServerError())
	ctx, cancel := context.WithCancel(context.Background())
	sleep := func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }
	caller := testCaller(t, fastLimits(), nil, WithSleep(sleep))
	_, err := NewOpenAIGenerator(srv.URL, testKey, caller).Generate(ctx, genReq())
	if got := Classify(err); got != ClassCanceled {
		t.Errorf("Classify: got %q, want %q (err %v)", got, ClassCanceled, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(err, context.Canceled): got false for %v", err)
	}
	if got := srv.Requests(); got != 1 {
		t.Errorf("requests: got %d, want 1", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", http.Header{}, 0},
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{"fractional seconds", http.Header{"Retry-After": {"1.5"}}, 1500 * time.Millisecond},
		{"http date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"date in the past", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"retry-after-ms wins", http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"3"}}, 250 * time.Millisecond},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"negative", http.Header{"Retry-After": {"-3"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.header, now); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	for retry := range 8 {
		ceil := min(baseBackoff<<retry, 3*time.Second)
		for range 200 {
			if d := backoff(retry, 3*time.Second, 0); d < 0 || d > ceil {
				t.Fatalf("backoff(%d): got %s, want in [0, %s]", retry, d, ceil)
			}
		}
		if d := backoff(retry, 3*time.Second, 10*time.Second); d < 10*time.Second {
			t.Fatalf("backoff(%d) with Retry-After 10s: got %s, want >= 10s", retry, d)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{context.Canceled, ClassCanceled},
		{context.DeadlineExceeded, ClassTimeout},
		{&APIError{StatusCode: 429}, ClassRateLimited},
		{&APIError{StatusCode: 502}, ClassServerError},
		{&APIError{StatusCode: 408}, ClassTimeout},
		{&APIError{StatusCode: 401}, ClassAuth},
		{&APIError{StatusCode: 404}, ClassModelNotFound},
		{&APIError{StatusCode: 400, Code: CodeJSONValidateFailed}, ClassJSONValidateFailed},
		{&APIError{StatusCode: 422}, ClassBadRequest},
		{ErrBadResponse, ClassBadResponse},
		{ErrBadVerdict, ClassBadVerdict},
		{errors.New("boom"), ClassUnknown},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v): got %q, want %q", tt.err, got, tt.want)
		}
	}
}

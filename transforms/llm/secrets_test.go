package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

// TestAPIKeyNeverLeaks drives every error path and the cache, then looks for the key in
// errors, logs, returned values, client structs and cache files.
func TestAPIKeyNeverLeaks(t *testing.T) {
	srv := startServer(t, llmtest.Config{Models: []string{"sft", GroqDefaultModel}, Responder: func(r llmtest.ChatRequest) (string, *llmtest.Fault) {
		if r.ResponseFormat != nil {
			return goodVerdict, nil
		}
		return "ok", nil
	}})
	dead := llmtest.New(llmtest.Config{})
	dead.Close()
	const userinfoSecret = "pw-secret-in-url"
	deadURL := strings.Replace(dead.URL, "http://", "http://user:"+userinfoSecret+"@", 1) + "?key=" + userinfoSecret

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	l := fastLimits()
	l.Timeout = 150 * time.Millisecond
	caller := testCaller(t, l, NewBlobCache(dir), WithLogger(logger), WithSleep((&sleepRecorder{}).sleep))
	gen := NewOpenAIGenerator(srv.URL, testKey, caller)
	judge := NewOpenAIPairJudge(srv.URL, testKey, "", caller)
	ctx := context.Background()

	var seen []string
	record := func(v any, err error) {
		seen = append(seen, fmt.Sprintf("%+v | %#v", v, v))
		if err != nil {
			seen = append(seen, err.Error(), fmt.Sprintf("%+v | %#v", err, err))
			// openai-go's error keeps the *http.Request, Authorization header included.
			var sdkErr *openai.Error
			if errors.As(err, &sdkErr) {
				t.Errorf("error %v wraps *openai.Error, which holds the request headers", err)
			}
		}
	}
	record(gen.Generate(ctx, genReq()))     // success, cached
	record(gen.Generate(ctx, genReq()))     // cache hit
	record(judge.JudgePair(ctx, pairReq())) // success, cached
	for _, f := range []*llmtest.Fault{llmtest.ServerError(), llmtest.RateLimited(time.Second), llmtest.Slow(time.Second), llmtest.BadRequest("bad"), llmtest.JSONValidateFailed()} {
		srv.Enqueue(f, f, f, f)
		req := genReq()
		req.User += f.Message // a fresh request each time, so no cache hit
		record(gen.Generate(ctx, req))
	}
	bad := genReq()
	bad.Model = "nope"
	record(gen.Generate(ctx, bad)) // 404
	record(NewOpenAIGenerator(srv.URL, "wrong-"+testKey, caller).Generate(ctx, GenerateRequest{Model: "sft", User: "401"}))
	record(NewOpenAIGenerator(deadURL, testKey, caller).Generate(ctx, GenerateRequest{Model: "sft", User: "refused"}))
	seen = append(seen, fmt.Sprintf("%+v %#v %+v %#v %+v", gen, judge, caller, *caller, caller.Stats().Snapshot()), logs.String())

	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		seen = append(seen, p, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != 2 {
		t.Errorf("cache files: got %d, want 2 (one generation, one verdict)", files)
	}
	if !strings.Contains(logs.String(), "llm retry") {
		t.Errorf("logs: got no retry lines, want some (the test must exercise logging)")
	}
	for _, s := range seen {
		for _, secret := range []string{testKey, userinfoSecret} {
			if strings.Contains(s, secret) {
				t.Errorf("secret %q leaked into: %.300s", secret, s)
			}
		}
	}
}

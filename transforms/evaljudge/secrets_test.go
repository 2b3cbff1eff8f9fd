package evaljudge

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge/geminitest"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// TestAPIKeyNeverLeaks drives every error path and the cache on both back-ends, then looks
// for the API key and the OAuth token in errors, error rows, logs, returned values, the
// judge struct and cache files.
func TestAPIKeyNeverLeaks(t *testing.T) {
	p, c := fixture(t)
	s := startServer(t, geminitest.Config{Responder: fairJudge})
	dead := geminitest.New(geminitest.Config{})
	dead.Close()

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	l := fastLimits()
	l.Timeout = 200 * time.Millisecond
	caller := testCaller(t, l, llm.NewBlobCache(dir), llm.WithLogger(logger), llm.WithSleep((&sleepRecorder{}).sleep))
	ctx := context.Background()

	var seen []string
	record := func(v any, err error) {
		seen = append(seen, fmt.Sprintf("%+v | %#v", v, v))
		if err != nil {
			seen = append(seen, err.Error(), fmt.Sprintf("%+v | %#v", err, err))
		}
	}
	for _, backend := range backends {
		j := newJudge(t, backend, s, caller)
		seen = append(seen, fmt.Sprintf("%+v %#v", j, j))
		req := func(tag string) Request { // a fresh request each time, so no cache hit
			return Request{Persona: p, Case: c, RecipeA: chickenTikka + tag, RecipeB: palakPaneer}
		}
		record(j.Judge(ctx, req("")))
		record(j.Judge(ctx, req(""))) // cache hit
		for i, f := range []*geminitest.Fault{geminitest.ServerError(), geminitest.RateLimited(time.Second), geminitest.Slow(time.Second),
			geminitest.BadRequest("bad"), geminitest.InvalidJSON(), geminitest.SchemaBreaking(), geminitest.Blocked()} {
			s.Enqueue(f, f, f, f)
			record(j.Judge(ctx, req(fmt.Sprint(backend, i))))
		}
		out, err := JudgeBothOrders(ctx, j, p, c, prose, palakPaneer)
		record(out, err)
	}
	// Wrong credentials and a dead endpoint.
	wrong := GeminiConfig{Backend: genai.BackendGeminiAPI, APIKey: "wrong-" + testKey, BaseURL: s.URL}
	if j, err := NewGeminiJudge(ctx, wrong, caller); err == nil {
		record(j.Judge(ctx, Request{Persona: p, Case: c, RecipeA: "401", RecipeB: "x"}))
	}
	cfg := geminiConfig(backendGem, dead)
	if j, err := NewGeminiJudge(ctx, cfg, caller); err == nil {
		record(j.Judge(ctx, Request{Persona: p, Case: c, RecipeA: "refused", RecipeB: "x"}))
	}
	// Construction errors print no key either.
	_, err := NewGeminiJudge(ctx, GeminiConfig{Backend: genai.BackendGeminiAPI, APIKey: testKey, Project: "p"}, caller)
	record(nil, err)
	seen = append(seen, fmt.Sprintf("%+v", caller.Stats().Snapshot()), logs.String())

	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		seen = append(seen, path, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "llm retry") {
		t.Errorf("logs: got no retry lines, want some (the test must exercise logging)")
	}
	for _, s := range seen {
		for _, secret := range []string{testKey, testToken} {
			if strings.Contains(s, secret) {
				t.Errorf("secret %q leaked into: %.300s", secret, s)
			}
		}
	}
}

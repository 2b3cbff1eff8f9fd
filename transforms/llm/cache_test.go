package llm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/transforms/blob/gcstest"
	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

func TestCacheHitReplaysOriginal(t *testing.T) {
	srv := startServer(t, llmtest.Config{Latency: 30 * time.Millisecond, Responder: func(r llmtest.ChatRequest) (string, *llmtest.Fault) {
		return `{"title":"Kimchi tofu stew"}`, nil
	}})
	dir := t.TempDir()
	ctx := context.Background()

	first, err := NewOpenAIGenerator(srv.URL, testKey, testCaller(t, fastLimits(), NewBlobCache(dir))).Generate(ctx, genReq())
	if err != nil {
		t.Fatal(err)
	}
	if first.CacheHit || first.LatencyMS < 30 {
		t.Fatalf("first call: got CacheHit=%v LatencyMS=%d, want a miss with latency >= 30", first.CacheHit, first.LatencyMS)
	}
	stored, err := os.ReadFile(filepath.Join(dir, first.CacheKey[:2], first.CacheKey+".json"))
	if err != nil {
		t.Fatalf("cache file: %v", err)
	}

	// A re-run: new process state (new Caller, new client), same cache directory.
	caller := testCaller(t, fastLimits(), NewBlobCache(dir))
	second, err := NewOpenAIGenerator(srv.URL, testKey, caller).Generate(ctx, genReq())
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Requests(); got != 1 {
		t.Errorf("server requests after the re-run: got %d, want 1", got)
	}
	if !second.CacheHit {
		t.Errorf("second call: got CacheHit=false, want true")
	}
	if got := caller.Stats().Snapshot(); got.CacheHits != 1 || got.Calls != 0 {
		t.Errorf("re-run stats: got %+v, want 1 cache hit and 0 calls", got)
	}
	second.CacheHit = false
	if second != first {
		t.Errorf("replayed response: got %+v, want %+v", second, first)
	}
	again, _ := os.ReadFile(filepath.Join(dir, first.CacheKey[:2], first.CacheKey+".json"))
	if string(again) != string(stored) {
		t.Errorf("cache file changed on a hit")
	}
}

func TestCacheKeyDependsOnRequestOnly(t *testing.T) {
	srv := startServer(t, llmtest.Config{})
	ctx := context.Background()
	cache := NewMemCache()
	gen := NewOpenAIGenerator(srv.URL, testKey, testCaller(t, fastLimits(), cache))
	base, err := gen.Generate(ctx, genReq())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mutate  func(*GenerateRequest)
		sameKey bool
	}{
		{"identical", func(*GenerateRequest) {}, true},
		{"temperature", func(r *GenerateRequest) { r.Temperature = 0.9 }, false},
		{"seed", func(r *GenerateRequest) { r.Seed = 43 }, false},
		{"top_p", func(r *GenerateRequest) { r.TopP = 1 }, false},
		{"max_tokens", func(r *GenerateRequest) { r.MaxTokens = 256 }, false},
		{"model", func(r *GenerateRequest) { r.Model = "dpo" }, false},
		{"system", func(r *GenerateRequest) { r.System += " " }, false},
		{"user", func(r *GenerateRequest) { r.User = "Create a recipe using rice." }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := genReq()
			tt.mutate(&req)
			resp, err := gen.Generate(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.CacheKey == base.CacheKey; got != tt.sameKey {
				t.Errorf("same key as the base request: got %v, want %v", got, tt.sameKey)
			}
			if resp.CacheHit != tt.sameKey {
				t.Errorf("CacheHit: got %v, want %v", resp.CacheHit, tt.sameKey)
			}
		})
	}

	// Neither the endpoint nor the key is part of the cache key.
	other := startServer(t, llmtest.Config{})
	resp, err := NewOpenAIGenerator(other.URL, testKey, testCaller(t, fastLimits(), cache)).Generate(ctx, genReq())
	if err != nil {
		t.Fatal(err)
	}
	if resp.CacheKey != base.CacheKey || !resp.CacheHit || other.Requests() != 0 {
		t.Errorf("other endpoint: got key %s hit=%v requests=%d, want key %s, a hit and no requests", resp.CacheKey, resp.CacheHit, other.Requests(), base.CacheKey)
	}
}

func TestCacheKeyCanonical(t *testing.T) {
	type ab struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	type ba struct {
		B string `json:"b"`
		A int    `json:"a"`
	}
	k1 := CacheKey(ab{1, "x"})
	for name, parts := range map[string]any{
		"reordered struct": ba{"x", 1},
		"map":              map[string]any{"b": "x", "a": 1},
	} {
		if got := CacheKey(parts); got != k1 {
			t.Errorf("%s: got %s, want %s", name, got, k1)
		}
	}
	if got := CacheKey(ab{2, "x"}); got == k1 {
		t.Errorf("different value: got the same key %s", got)
	}
	if len(k1) != 64 || strings.Trim(k1, "0123456789abcdef") != "" {
		t.Errorf("key %q: want 64 lower-case hex digits", k1)
	}
}

func TestFailuresNotCached(t *testing.T) {
	srv := startServer(t, llmtest.Config{})
	srv.Enqueue(llmtest.BadRequest("nope"))
	cache := NewMemCache()
	gen := NewOpenAIGenerator(srv.URL, testKey, testCaller(t, fastLimits(), cache))
	if _, err := gen.Generate(context.Background(), genReq()); err == nil {
		t.Fatal("got nil error, want the 400")
	}
	if cache.Len() != 0 {
		t.Errorf("cache entries after a failure: got %d, want 0", cache.Len())
	}
	resp, err := gen.Generate(context.Background(), genReq())
	if err != nil || resp.CacheHit {
		t.Fatalf("second call: got hit=%v err=%v, want a fresh successful call", resp.CacheHit, err)
	}
	if cache.Len() != 1 {
		t.Errorf("cache entries after a success: got %d, want 1", cache.Len())
	}
}

func TestBlobCacheRoundTrip(t *testing.T) {
	gcstest.Start(t, "llm-cache")
	for _, root := range []string{t.TempDir(), "gs://llm-cache/run1/cache"} {
		t.Run(root, func(t *testing.T) {
			ctx := context.Background()
			c := NewBlobCache(root)
			key := CacheKey("hello")
			if _, ok, err := c.Get(ctx, key); ok || err != nil {
				t.Fatalf("Get before Put: got ok=%v err=%v, want a clean miss", ok, err)
			}
			if err := c.Put(ctx, key, []byte(`{"v":1}`)); err != nil {
				t.Fatal(err)
			}
			got, ok, err := c.Get(ctx, key)
			if err != nil || !ok || string(got) != `{"v":1}` {
				t.Fatalf("Get after Put: got %q ok=%v err=%v, want {\"v\":1}", got, ok, err)
			}
			for _, bad := range []string{"", "ab", "../../etc/passwd", "ABCDEF"} {
				if err := c.Put(ctx, bad, nil); err == nil {
					t.Errorf("Put(%q): got nil error, want a key error", bad)
				}
			}
		})
	}
	// The layout is <root>/<key[:2]>/<key>.json.
	dir := t.TempDir()
	key := CacheKey(1)
	if err := NewBlobCache(dir).Put(context.Background(), key, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, key[:2], key+".json")); err != nil {
		t.Errorf("layout: %v", err)
	}
}

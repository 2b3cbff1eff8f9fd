package localgen

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pantrypilot/recipe-dpo/trainer/generate"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/localgen/localgentest"
)

func TestGenerateCachedAndAdapter(t *testing.T) {
	dir, mc := localgentest.TinyModelDir(t)
	ctx := context.Background()
	m, err := Load(Config{ModelDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	caller, err := llm.NewCaller("local", llm.Limits{RPM: 1e6, Concurrency: 2, Timeout: 60e9, MaxBackoff: 1e9}, llm.NewMemCache())
	if err != nil {
		t.Fatal(err)
	}
	gen := NewGenerator(m, caller)
	req := llm.GenerateRequest{System: "You are a helpful cooking assistant.", User: "I have tofu.", Temperature: 0.7, TopP: 1, MaxTokens: 12, Seed: 3}
	first, err := gen.Generate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.CompletionTokens == 0 || first.CacheHit || first.Model != m.Name() {
		t.Errorf("first = %+v, want completion tokens, no cache hit, model %s", first, m.Name())
	}
	again, err := gen.Generate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !again.CacheHit || again.Text != first.Text || again.LatencyMS != first.LatencyMS {
		t.Errorf("repeat = %+v, want a cache hit identical to %+v", again, first)
	}
	// A fresh model with the same seed samples the same text (no cache).
	m2, err := Load(Config{ModelDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := llm.NewCaller("local2", llm.Limits{RPM: 1e6, Concurrency: 1, Timeout: 60e9, MaxBackoff: 1e9}, nil)
	if r, err := NewGenerator(m2, c2).Generate(ctx, req); err != nil || r.Text != first.Text {
		t.Errorf("same seed on a fresh load = %q, %v; want %q", r.Text, err, first.Text)
	}

	// A merged adapter with non-zero B changes the model and its identity.
	a := peft.NewRandom(peft.NewConfig(4, 8, 0, "q_proj", "v_proj"), mc, 9)
	for k, b := range a.B {
		for i := range b {
			b[i] = 0.5
		}
		a.B[k] = b
	}
	adir := t.TempDir()
	if err := peft.Save(adir, a, mc); err != nil {
		t.Fatal(err)
	}
	ma, err := Load(Config{ModelDir: dir, Adapter: adir})
	if err != nil {
		t.Fatal(err)
	}
	if ma.Name() == m.Name() {
		t.Errorf("adapter model has the base's name %s", ma.Name())
	}
	greedy := req
	greedy.Temperature = 0
	ca, _ := llm.NewCaller("local3", llm.Limits{RPM: 1e6, Concurrency: 1, Timeout: 60e9, MaxBackoff: 1e9}, nil)
	rb, err1 := NewGenerator(m, ca).Generate(ctx, greedy)
	ra, err2 := NewGenerator(ma, ca).Generate(ctx, greedy)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if ra.Text == rb.Text {
		t.Errorf("greedy text with and without the adapter are equal (%q); want the adapter to change it", ra.Text)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(Config{}); err == nil {
		t.Error("Load(no model dir) = nil error")
	}
	if _, err := Load(Config{ModelDir: t.TempDir()}); err == nil {
		t.Error("Load(empty dir) = nil error")
	}
}

// TestGenerateBatch: requests with their own settings, some already cached, answered in one
// GenerateBatch (and through llm.GenerateAll) exactly as one Generate call each.
func TestGenerateBatch(t *testing.T) {
	dir, _ := localgentest.TinyModelDir(t)
	ctx := context.Background()
	m, err := Load(Config{ModelDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	limits := llm.Limits{RPM: 1e6, Concurrency: 2, Timeout: 60e9, MaxBackoff: 1e9}
	reqs := []llm.GenerateRequest{
		{System: "You are a cook.", User: "I have tofu.", Temperature: 0.7, TopP: 1, MaxTokens: 12, Seed: 3},
		{System: "You are a cook.", User: "Something with leeks and a lot of butter, please.", MaxTokens: 6, Seed: 4},
		{System: "You are a cook.", User: "Rice.", Temperature: 0.9, TopP: 0.9, MaxTokens: 10, Seed: 5},
		// Request 1 with penalties: its own cache entry, decoded with them.
		{System: "You are a cook.", User: "Something with leeks and a lot of butter, please.", MaxTokens: 6, Seed: 4,
			PresencePenalty: 2, FrequencyPenalty: 0.5},
	}
	single, _ := llm.NewCaller("single", limits, nil)
	want := make([]llm.GenerateResponse, len(reqs))
	for i, r := range reqs {
		if want[i], err = NewGenerator(m, single).Generate(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	cache := llm.NewMemCache()
	batched, _ := llm.NewCaller("batched", limits, cache)
	gen := NewGenerator(m, batched).(llm.BatchGenerator)
	if _, errs := gen.GenerateBatch(ctx, reqs[1:2]); errs[0] != nil { // request 1 is then a cache hit
		t.Fatal(errs[0])
	}
	got, errs := gen.GenerateBatch(ctx, reqs)
	for i := range reqs {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if got[i].Text != want[i].Text || got[i].CompletionTokens != want[i].CompletionTokens || got[i].CacheHit != (i == 1) {
			t.Errorf("request %d: batched %+v, alone %+v (want a cache hit only for request 1)", i, got[i], want[i])
		}
	}
	if s := batched.Stats().Snapshot(); s.Done != 5 || s.CacheHits != 1 || s.Calls != 2 {
		t.Errorf("stats %+v, want 5 done, 1 cache hit, 2 batch calls", s)
	}
	if got[3].CacheKey == got[1].CacheKey {
		t.Errorf("requests with and without penalties share the cache key %s", got[1].CacheKey)
	}
	all, errs, err := llm.GenerateAll(ctx, gen, reqs, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		if errs[i] != nil || all[i].Text != want[i].Text || !all[i].CacheHit {
			t.Errorf("GenerateAll request %d: %+v, %v; want the cached %q", i, all[i], errs[i], want[i].Text)
		}
	}
}

// TestReplicas: a model loaded twice decodes two batches at once, and every answer is the
// one a single copy gives; a cancelled call waiting for a free copy returns.
func TestReplicas(t *testing.T) {
	dir, _ := localgentest.TinyModelDir(t)
	ctx := context.Background()
	one, err := Load(Config{ModelDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	two, err := Load(Config{ModelDir: dir, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if one.Name() != two.Name() || cap(two.free) != 2 {
		t.Fatalf("replicated model: name %s and %d copies, want %s and 2", two.Name(), cap(two.free), one.Name())
	}
	limits := llm.Limits{RPM: 1e6, Concurrency: 4, Timeout: 60e9, MaxBackoff: 1e9}
	var reqs []llm.GenerateRequest
	for i := range 8 {
		reqs = append(reqs, llm.GenerateRequest{System: "You are a cook.", User: fmt.Sprintf("Dinner idea number %d?", i),
			Temperature: 0.8, TopP: 1, MaxTokens: 10, Seed: int64(i), PresencePenalty: 0.5})
	}
	c1, _ := llm.NewCaller("one", limits, nil)
	want, errs, err := llm.GenerateAll(ctx, NewGenerator(one, c1), reqs, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := llm.NewCaller("two", limits, nil)
	got, errs2, err := llm.GenerateAll(ctx, NewGenerator(two, c2), reqs, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		if errs[i] != nil || errs2[i] != nil {
			t.Fatalf("request %d: %v, %v", i, errs[i], errs2[i])
		}
		if got[i].Text != want[i].Text || got[i].CompletionTokens != want[i].CompletionTokens {
			t.Errorf("request %d: two copies gave %q (%d tokens), one copy %q (%d)", i, got[i].Text, got[i].CompletionTokens,
				want[i].Text, want[i].CompletionTokens)
		}
	}

	// Both copies busy: a call whose context ends while it waits gives up.
	a, b := <-two.free, <-two.free
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := two.generate(cctx, nil, generate.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting for a free copy under a cancelled context: got %v, want context.Canceled", err)
	}
	two.free <- a
	two.free <- b
}

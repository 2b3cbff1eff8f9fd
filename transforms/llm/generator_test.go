package llm

import (
	"context"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

func TestOpenAIGeneratorWire(t *testing.T) {
	srv := startServer(t, llmtest.Config{Latency: 20 * time.Millisecond, Responder: func(r llmtest.ChatRequest) (string, *llmtest.Fault) {
		return "recipe for " + r.Model, nil
	}})
	caller := testCaller(t, fastLimits(), nil)
	in := genReq()
	in.PresencePenalty, in.FrequencyPenalty = 0.6, -0.25
	resp, err := NewOpenAIGenerator(srv.URL, testKey, caller).Generate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	req := srv.LastRequest()
	checks := []struct {
		name      string
		got, want any
	}{
		{"model", req.Model, "sft"},
		{"messages", len(req.Messages), 2},
		{"system role", req.Messages[0].Role, "system"},
		{"system content", req.Messages[0].Content, genReq().System},
		{"user role", req.Messages[1].Role, "user"},
		{"user content", req.Messages[1].Content, genReq().User},
		{"temperature", deref(req.Temperature), 0.7},
		{"top_p", deref(req.TopP), 0.9},
		{"max_tokens", deref(req.MaxTokens), 512},
		{"seed", deref(req.Seed), int64(42)},
		{"presence_penalty", deref(req.PresencePenalty), 0.6},
		{"frequency_penalty", deref(req.FrequencyPenalty), -0.25},
		{"response_format", req.ResponseFormat == nil, true},
		{"text", resp.Text, "recipe for sft"},
		{"model echoed", resp.Model, "sft"},
		{"prompt tokens", resp.PromptTokens, int64((len(genReq().System) + len(genReq().User)) / 4)},
		{"completion tokens", resp.CompletionTokens, int64(len("recipe for sft") / 4)},
		{"cache hit", resp.CacheHit, false},
		{"stats prompt tokens", caller.Stats().PromptTokens.Load(), resp.PromptTokens},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if resp.LatencyMS < 20 {
		t.Errorf("latency: got %d ms, want >= 20", resp.LatencyMS)
	}
	if resp.CacheKey == "" {
		t.Errorf("cache key: got empty, want the request's key even without a cache")
	}
}

func TestOpenAIGeneratorZeroValuesOnWire(t *testing.T) {
	srv := startServer(t, llmtest.Config{})
	gen := NewOpenAIGenerator(srv.URL, testKey, testCaller(t, fastLimits(), nil))
	if _, err := gen.Generate(context.Background(), GenerateRequest{Model: "sft", User: "hi"}); err != nil {
		t.Fatal(err)
	}
	req := srv.LastRequest()
	// Temperature 0 is a real setting and must be sent; zero TopP/MaxTokens/Seed mean unset.
	if req.Temperature == nil || *req.Temperature != 0 {
		t.Errorf("temperature: got %v, want 0 sent explicitly", req.Temperature)
	}
	if req.TopP != nil || req.MaxTokens != nil || req.Seed != nil || req.PresencePenalty != nil || req.FrequencyPenalty != nil {
		t.Errorf("top_p, max_tokens, seed, presence_penalty, frequency_penalty: got %v %v %v %v %v, want all unset",
			req.TopP, req.MaxTokens, req.Seed, req.PresencePenalty, req.FrequencyPenalty)
	}
	if len(req.Messages) != 1 || req.Messages[0].Role != "user" {
		t.Errorf("messages: got %+v, want one user message (no empty system message)", req.Messages)
	}
}

func TestOpenAIGeneratorUnknownAdapter(t *testing.T) {
	srv := startServer(t, llmtest.Config{Models: []string{"sft"}})
	gen := NewOpenAIGenerator(srv.URL, testKey, testCaller(t, fastLimits(), nil))
	req := genReq()
	req.Model = "dpo-persona-x"
	_, err := gen.Generate(context.Background(), req)
	if got := Classify(err); got != ClassModelNotFound {
		t.Fatalf("Classify: got %q, want %q (err %v)", got, ClassModelNotFound, err)
	}
	want := `model "dpo-persona-x" not served at ` + srv.URL + ` (with vLLM the model name is the LoRA adapter name)`
	if err == nil || len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("error: got %v, want it to start with %q", err, want)
	}
	if got := srv.RequestsFor("dpo-persona-x"); got != 1 {
		t.Errorf("requests for the unknown model: got %d, want 1 (no retries)", got)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

package llm_test

import (
	"context"
	"fmt"

	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

// A generator for a vLLM endpoint serving the "sft" LoRA adapter, with a cache: the second
// identical request is answered from the cache without a call.
func ExampleNewOpenAIGenerator() {
	srv := llmtest.New(llmtest.Config{Responder: func(r llmtest.ChatRequest) (string, *llmtest.Fault) {
		return `{"title": "Kimchi tofu stew"}`, nil
	}})
	defer srv.Close()

	limits := llm.DefaultLimits()
	limits.RPM, limits.TPM = 600, 0 // a self-hosted endpoint: --rpm 600 --tpm 0
	caller := llm.Shared("example-generator", limits, llm.NewMemCache())
	gen := llm.NewOpenAIGenerator(srv.URL, "" /* GENERATOR_API_KEY */, caller)

	req := llm.GenerateRequest{Model: "sft", System: "You are a Korean home cook.", User: "Create a recipe using tofu.", Temperature: 0.7, MaxTokens: 512}
	for range 2 {
		resp, err := gen.Generate(context.Background(), req)
		if err != nil {
			fmt.Println(llm.Classify(err), err)
			return
		}
		fmt.Println(resp.Text, resp.CacheHit)
	}
	s := caller.Stats().Snapshot()
	fmt.Println("calls:", s.Calls, "cache hits:", s.CacheHits, "requests served:", srv.Requests())
	// Output:
	// {"title": "Kimchi tofu stew"} false
	// {"title": "Kimchi tofu stew"} true
	// calls: 1 cache hits: 1 requests served: 1
}

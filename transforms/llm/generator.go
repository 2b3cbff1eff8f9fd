package llm

import (
	"context"
	"errors"
	"fmt"

	"github.com/pantrypilot/recipe-dpo/transforms/fanout"
)

// GenerateRequest is one recipe-generation call. Zero TopP, MaxTokens, Seed and penalties
// mean "the server's default" and are not sent; Temperature is always sent.
type GenerateRequest struct {
	// Model names the model; with vLLM --enable-lora it names the LoRA adapter ("sft").
	Model        string
	System, User string
	Temperature  float64
	TopP         float64
	MaxTokens    int
	Seed         int64
	// PresencePenalty and FrequencyPenalty are the OpenAI API's (and vLLM's) penalties on
	// tokens the completion already holds, in [−2, 2]; 0 is off.
	PresencePenalty, FrequencyPenalty float64
}

// ValidatePenalties checks presence and frequency penalties (the OpenAI API's range,
// [−2, 2]) with a message naming the flags to fix.
func ValidatePenalties(presence, frequency float64) error {
	var errs []error
	if !(presence >= -2 && presence <= 2) {
		errs = append(errs, fmt.Errorf("--presence_penalty (%g) must be in [-2, 2]", presence))
	}
	if !(frequency >= -2 && frequency <= 2) {
		errs = append(errs, fmt.Errorf("--frequency_penalty (%g) must be in [-2, 2]", frequency))
	}
	return errors.Join(errs...)
}

// GenerateResponse is a generated text with its provenance. On a cache hit every field
// except CacheHit equals the original call's, LatencyMS included.
type GenerateResponse struct {
	Text, Model                               string
	PromptTokens, CompletionTokens, LatencyMS int64
	CacheKey                                  string
	CacheHit                                  bool
}

// Generator produces one completion for a system and user prompt. The OpenAI-compatible
// implementation serves vLLM and hosted endpoints; the in-process GoMLX model implements
// it too.
type Generator interface {
	Generate(ctx context.Context, req GenerateRequest) (GenerateResponse, error)
}

// BatchGenerator is a Generator that answers several requests in one call more cheaply than
// one at a time: an in-process model decodes them together. Each answer must be the one
// Generate gives for its request alone, so batching never changes results.
type BatchGenerator interface {
	Generator
	// GenerateBatch answers reqs[i] with resps[i], or errs[i] when it failed.
	GenerateBatch(ctx context.Context, reqs []GenerateRequest) (resps []GenerateResponse, errs []error)
}

// GenerateAll answers every request, at most concurrency calls at a time: through
// GenerateBatch in consecutive chunks of batch requests when g is a BatchGenerator (and
// batch > 1), else one Generate call per request. It returns an answer or an error per
// request, and an error only when ctx ended.
func GenerateAll(ctx context.Context, g Generator, reqs []GenerateRequest, concurrency, batch int) ([]GenerateResponse, []error, error) {
	resps, errs := make([]GenerateResponse, len(reqs)), make([]error, len(reqs))
	if len(reqs) == 0 {
		return resps, errs, ctx.Err()
	}
	bg, ok := g.(BatchGenerator)
	if !ok || batch <= 1 {
		err := fanout.Run(ctx, len(reqs), concurrency, func(ctx context.Context, i int) {
			resps[i], errs[i] = g.Generate(ctx, reqs[i])
		})
		return resps, errs, err
	}
	err := fanout.Run(ctx, fanout.Batches(len(reqs), batch), concurrency, func(ctx context.Context, b int) {
		lo, hi := b*batch, min((b+1)*batch, len(reqs))
		rs, es := bg.GenerateBatch(ctx, reqs[lo:hi])
		copy(resps[lo:hi], rs)
		copy(errs[lo:hi], es)
	})
	return resps, errs, err
}

// openAIGenerator is a Generator over an OpenAI-compatible chat-completions endpoint.
type openAIGenerator struct{ chat *chatClient }

// NewOpenAIGenerator returns a Generator for the chat-completions endpoint at baseURL
// (".../v1"), calling through caller. apiKey may be empty for an unauthenticated vLLM; the
// caller reads it from the environment (GENERATOR_API_KEY) and it is used only in the
// Authorization header.
func NewOpenAIGenerator(baseURL, apiKey string, caller *Caller) Generator {
	return openAIGenerator{chat: newChatClient(baseURL, apiKey, caller)}
}

// Generate implements Generator.
func (g openAIGenerator) Generate(ctx context.Context, req GenerateRequest) (GenerateResponse, error) {
	if req.Model == "" {
		return GenerateResponse{}, errors.New("generate: model is empty")
	}
	var msgs []chatMessage
	if req.System != "" {
		msgs = append(msgs, chatMessage{Role: "system", Content: req.System})
	}
	msgs = append(msgs, chatMessage{Role: "user", Content: req.User})
	ans, err := g.chat.complete(ctx, chatRequest{
		Model:       req.Model,
		Messages:    msgs,
		Temperature: req.Temperature,
		TopP:        req.TopP,
		MaxTokens:   req.MaxTokens,
		Seed:        req.Seed,
		Presence:    req.PresencePenalty,
		Frequency:   req.FrequencyPenalty,
	}, nil)
	if err != nil {
		return GenerateResponse{}, err
	}
	return GenerateResponse{
		Text:             ans.Text,
		Model:            ans.Model,
		PromptTokens:     ans.PromptTokens,
		CompletionTokens: ans.CompletionTokens,
		LatencyMS:        ans.LatencyMS,
		CacheKey:         ans.CacheKey,
		CacheHit:         ans.CacheHit,
	}, nil
}

package llm

import (
	"context"
	"errors"
)

// GenerateRequest is one recipe-generation call. Zero TopP, MaxTokens and Seed mean "the
// server's default" and are not sent; Temperature is always sent.
type GenerateRequest struct {
	// Model names the model; with vLLM --enable-lora it names the LoRA adapter ("sft").
	Model        string
	System, User string
	Temperature  float64
	TopP         float64
	MaxTokens    int
	Seed         int64
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

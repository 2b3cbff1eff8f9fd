package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// chatKind versions the cache entries of OpenAI-compatible chat calls: change it when the
// stored record's format changes, and old entries stop matching.
const chatKind = "openai.chat.completions/v1"

// responseFormatJSON is the only response_format the project asks for.
const responseFormatJSON = "json_object"

// defaultMaxTokensEstimate is the completion budget charged to the TPM limiter when a
// request sets no max_tokens.
const defaultMaxTokensEstimate = 1024

// chatMessage is one message of a chat request.
type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatRequest is everything that determines a chat answer; its canonical JSON is the cache
// key. It deliberately has no endpoint URL and no API key: the same request to a mirror
// of the same model is the same request, and keys must never reach the cache.
type chatRequest struct {
	Kind           string        `json:"kind"`
	Model          string        `json:"model"`
	Messages       []chatMessage `json:"messages"`
	Temperature    float64       `json:"temperature"`
	TopP           float64       `json:"top_p,omitempty"`
	MaxTokens      int           `json:"max_tokens,omitempty"`
	Seed           int64         `json:"seed,omitempty"`
	Presence       float64       `json:"presence_penalty,omitempty"`
	Frequency      float64       `json:"frequency_penalty,omitempty"`
	ResponseFormat string        `json:"response_format,omitempty"`
}

// chatRecord is the cached value of one answer: the request (for audits), the original
// latency and the endpoint's response body as received.
type chatRecord struct {
	Request   chatRequest     `json:"request"`
	LatencyMS int64           `json:"latency_ms"`
	Response  json.RawMessage `json:"response"`
}

// chatAnswer is a decoded chatRecord.
type chatAnswer struct {
	Text, Model, FinishReason                 string
	PromptTokens, CompletionTokens, LatencyMS int64
	CacheKey                                  string
	CacheHit                                  bool
}

// completionBody is the part of a chat.completion body the project reads.
type completionBody struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// chatClient is the OpenAI-compatible transport shared by the generator and the judge.
type chatClient struct {
	svc      openai.ChatCompletionService
	endpoint string // base URL without credentials, for error messages
	caller   *Caller
}

// newChatClient builds a client for baseURL (e.g. https://api.groq.com/openai/v1). The
// service is built directly rather than through openai.NewClient, which would also read
// OPENAI_API_KEY, OPENAI_BASE_URL and friends from the environment; here the caller passes
// everything. openai-go's own retries are off: the Caller retries.
func newChatClient(baseURL, apiKey string, caller *Caller) *chatClient {
	// Keep one idle connection per concurrent request: the default of 2 would make a
	// fan-out of 64 reconnect constantly.
	var transport http.RoundTripper = http.DefaultTransport
	if t, ok := transport.(*http.Transport); ok {
		t = t.Clone()
		t.MaxIdleConnsPerHost = max(caller.Limits().Concurrency, 2)
		transport = t
	}
	opts := []option.RequestOption{
		option.WithBaseURL(baseURL),
		option.WithHTTPClient(&http.Client{Transport: transport}),
		option.WithMaxRetries(0),
		option.WithMiddleware(apiErrorMiddleware(caller.now)),
	}
	if apiKey != "" {
		opts = append(opts, option.WithAPIKey(apiKey))
	}
	return &chatClient{
		svc:      openai.NewChatCompletionService(opts...),
		endpoint: redactURL(baseURL),
		caller:   caller,
	}
}

// complete runs one chat request through the Caller. check, when non-nil, vets the answer
// text inside the attempt, so an unusable answer is neither cached nor retried.
func (c *chatClient) complete(ctx context.Context, req chatRequest, check func(text string) error) (chatAnswer, error) {
	req.Kind = chatKind
	key := CacheKey(req)
	chars := 0
	for _, m := range req.Messages {
		chars += len(m.Content)
	}
	maxTok := req.MaxTokens
	if maxTok <= 0 {
		maxTok = defaultMaxTokensEstimate
	}
	params := toParams(req)
	body, hit, err := c.caller.Do(ctx, key, EstimateTokens(chars, maxTok), func(ctx context.Context) (Result, error) {
		start := time.Now()
		var raw []byte
		if _, err := c.svc.New(ctx, params, option.WithResponseBodyInto(&raw)); err != nil {
			return Result{}, scrubError(err)
		}
		latency := time.Since(start).Milliseconds()
		ans, err := decodeCompletion(raw)
		if err != nil {
			return Result{}, err
		}
		if check != nil {
			if err := check(ans.Text); err != nil {
				return Result{}, err
			}
		}
		rec, err := json.Marshal(chatRecord{Request: req, LatencyMS: latency, Response: raw})
		if err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
		}
		return Result{Body: rec, PromptTokens: ans.PromptTokens, CompletionTokens: ans.CompletionTokens}, nil
	})
	if err != nil {
		if Classify(err) == ClassModelNotFound {
			return chatAnswer{}, fmt.Errorf("model %q not served at %s (with vLLM the model name is the LoRA adapter name): %w", req.Model, c.endpoint, err)
		}
		return chatAnswer{}, fmt.Errorf("chat %s at %s: %w", req.Model, c.endpoint, err)
	}
	// Fresh and cached answers are decoded from the same bytes, so they are identical.
	var rec chatRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return chatAnswer{}, fmt.Errorf("chat %s: cache entry %s: %w: %v", req.Model, key, ErrBadResponse, err)
	}
	ans, err := decodeCompletion(rec.Response)
	if err != nil {
		return chatAnswer{}, fmt.Errorf("chat %s: cache entry %s: %w", req.Model, key, err)
	}
	ans.LatencyMS, ans.CacheKey, ans.CacheHit = rec.LatencyMS, key, hit
	if ans.Model == "" {
		ans.Model = req.Model
	}
	return ans, nil
}

// toParams maps a chatRequest onto openai-go's request. Zero TopP, MaxTokens, Seed and
// penalties are left out (the server's defaults); temperature is always sent, since 0 is meaningful.
func toParams(req chatRequest) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{
		Model:       req.Model,
		Temperature: openai.Float(req.Temperature),
	}
	for _, m := range req.Messages {
		switch m.Role {
		case "system":
			p.Messages = append(p.Messages, openai.SystemMessage(m.Content))
		case "assistant":
			p.Messages = append(p.Messages, openai.AssistantMessage(m.Content))
		default:
			p.Messages = append(p.Messages, openai.UserMessage(m.Content))
		}
	}
	if req.TopP > 0 {
		p.TopP = openai.Float(req.TopP)
	}
	if req.MaxTokens > 0 {
		// max_tokens rather than max_completion_tokens: vLLM and Groq both accept it.
		p.MaxTokens = openai.Int(int64(req.MaxTokens))
	}
	if req.Seed != 0 {
		p.Seed = openai.Int(req.Seed)
	}
	if req.Presence != 0 {
		p.PresencePenalty = openai.Float(req.Presence)
	}
	if req.Frequency != 0 {
		p.FrequencyPenalty = openai.Float(req.Frequency)
	}
	if req.ResponseFormat == responseFormatJSON {
		p.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}
	}
	return p
}

// decodeCompletion reads the answer text and usage from a chat.completion body.
func decodeCompletion(raw []byte) (chatAnswer, error) {
	var b completionBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return chatAnswer{}, fmt.Errorf("%w: body is not a chat completion: %v", ErrBadResponse, err)
	}
	if len(b.Choices) == 0 || b.Choices[0].Message.Content == nil {
		return chatAnswer{}, fmt.Errorf("%w: no choices[0].message.content", ErrBadResponse)
	}
	return chatAnswer{
		Text:             *b.Choices[0].Message.Content,
		Model:            b.Model,
		FinishReason:     b.Choices[0].FinishReason,
		PromptTokens:     b.Usage.PromptTokens,
		CompletionTokens: b.Usage.CompletionTokens,
	}, nil
}

// apiErrorMiddleware turns every HTTP error answer into an *APIError before openai-go sees
// it. openai-go's own error keeps the *http.Request (Authorization header included) and
// fails on bodies that are not {"error": {...}}, such as vLLM's flat error object.
func apiErrorMiddleware(now func() time.Time) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		res, err := next(req)
		if err != nil || res.StatusCode < 400 {
			return res, err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return nil, parseAPIError(res.StatusCode, res.Header, body, now())
	}
}

// parseAPIError reads an error body in OpenAI/Groq form ({"error": {...}}) or vLLM form
// (a flat object whose code may be a number), falling back to the start of the text.
func parseAPIError(status int, h http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{StatusCode: status, RetryAfter: parseRetryAfter(h, now)}
	type errObj struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	var wrapped struct {
		Error *errObj `json:"error"`
	}
	var flat errObj
	var obj *errObj
	if json.Unmarshal(body, &wrapped) == nil && wrapped.Error != nil {
		obj = wrapped.Error
	} else if json.Unmarshal(body, &flat) == nil && (flat.Message != "" || flat.Type != "") {
		obj = &flat
	}
	if obj == nil {
		e.Message = strings.TrimSpace(string(body[:min(len(body), 200)]))
		return e
	}
	e.Message, e.Type = obj.Message, obj.Type
	if c := strings.Trim(string(obj.Code), `"`); c != "null" {
		e.Code = c
	}
	return e
}

// scrubError removes credentials and query strings from URLs in transport errors; some
// providers take keys as query parameters, and errors end up in logs and dead letters.
func scrubError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactURL(ue.URL)
	}
	return err
}

// redactURL drops user info, query and fragment from a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparseable URL>"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

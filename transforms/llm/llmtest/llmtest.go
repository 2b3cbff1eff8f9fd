// Package llmtest runs a fake OpenAI-compatible chat-completions server on 127.0.0.1 for
// tests and benchmarks. It speaks the real wire protocol (the JSON bodies, status codes and
// headers of OpenAI, Groq and vLLM), so clients are tested through openai-go unchanged.
//
// Behaviour is scripted: a Responder writes each answer, a fixed Latency delays every
// answer, and Faults (a queue consumed by the next requests, or a function of the request)
// inject 429s with Retry-After, 500s, slow answers, invalid JSON content, Groq's 400
// json_validate_failed and vLLM's 404 for an unknown model.
package llmtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Message is one chat message of a request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ResponseFormat is a request's response_format.
type ResponseFormat struct {
	Type string `json:"type"`
}

// ChatRequest is the decoded body of a chat-completions request. Pointer fields are nil
// when the client did not send them.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Seed                *int64          `json:"seed"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	ResponseFormat      *ResponseFormat `json:"response_format"`
}

// Text returns the contents of all messages joined by newlines, handy for responders.
func (r ChatRequest) Text() string {
	parts := make([]string, len(r.Messages))
	for i, m := range r.Messages {
		parts[i] = m.Content
	}
	return strings.Join(parts, "\n")
}

// Responder writes the assistant content for a request, or returns a Fault to answer with.
type Responder func(req ChatRequest) (content string, fault *Fault)

// Config configures a Server. The zero value answers every request with "ok" at once.
type Config struct {
	// APIKey, when set, is the key every request must carry as "Authorization: Bearer
	// <APIKey>"; others get 401.
	APIKey string
	// Latency delays every answer (errors included), like a model's generation time.
	Latency time.Duration
	// Responder writes answers; nil answers "ok".
	Responder Responder
	// Fault, when set, is consulted for every request after the fault queue; a non-nil
	// Fault is answered instead of calling the Responder. n counts requests from 1.
	Fault func(n int64, req ChatRequest) *Fault
	// Models, when non-empty, are the models served; others get vLLM's 404.
	Models []string
}

// Server is a running fake endpoint. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give clients: "http://127.0.0.1:PORT/v1".
	URL string

	cfg   Config
	srv   *httptest.Server
	total atomic.Int64

	mu      sync.Mutex
	byModel map[string]int
	queue   []*Fault
	last    ChatRequest
	all     []ChatRequest
}

// Start runs a Server until the test ends.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s := New(cfg)
	tb.Cleanup(s.Close)
	return s
}

// New runs a Server; Close stops it.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, byModel: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.handle)
	mux.HandleFunc("POST /chat/completions", s.handle)
	s.srv = httptest.NewServer(mux) // listens on 127.0.0.1
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close stops the server, waiting for requests in flight.
func (s *Server) Close() { s.srv.Close() }

// Enqueue appends faults answered, in order, by the next requests (one each; a nil entry
// lets one request through normally).
func (s *Server) Enqueue(faults ...*Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, faults...)
}

// Requests is the number of chat requests received (authorized or not).
func (s *Server) Requests() int64 { return s.total.Load() }

// RequestsFor is the number of requests received for model.
func (s *Server) RequestsFor(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byModel[model]
}

// LastRequest returns the last decoded request.
func (s *Server) LastRequest() ChatRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// AllRequests returns every decoded request, in arrival order.
func (s *Server) AllRequests() []ChatRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ChatRequest(nil), s.all...)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	n := s.total.Add(1)
	var req ChatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, &Fault{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: "invalid JSON body: " + err.Error()})
		return
	}
	s.mu.Lock()
	s.byModel[req.Model]++
	s.last = req
	s.all = append(s.all, req)
	var fault *Fault
	if len(s.queue) > 0 {
		fault, s.queue = s.queue[0], s.queue[1:]
	}
	s.mu.Unlock()

	if s.cfg.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.cfg.APIKey {
		// Like the real APIs, the message does not echo the key that was sent.
		writeError(w, &Fault{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key", Message: "Invalid API Key"})
		return
	}
	if fault == nil && s.cfg.Fault != nil {
		fault = s.cfg.Fault(n, req)
	}
	if fault == nil && len(s.cfg.Models) > 0 && !contains(s.cfg.Models, req.Model) {
		fault = ModelNotFound(req.Model)
	}
	content := "ok"
	if fault == nil && s.cfg.Responder != nil {
		content, fault = s.cfg.Responder(req)
	}
	delay := s.cfg.Latency
	if fault != nil {
		delay += fault.Delay
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the client gave up (its timeout): stop at once
			t.Stop()
			return
		}
	}
	if fault != nil && fault.Status >= 400 {
		for k, vs := range fault.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		writeError(w, fault)
		return
	}
	if fault != nil && fault.Content != nil {
		content = *fault.Content
	}
	writeCompletion(w, n, req, content)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// writeCompletion writes a chat.completion body. Token counts follow the 4-characters-per-
// token rule of thumb, so they are deterministic.
func writeCompletion(w http.ResponseWriter, n int64, req ChatRequest, content string) {
	prompt := 0
	for _, m := range req.Messages {
		prompt += len(m.Content)
	}
	pt, ct := max(1, prompt/4), max(1, len(content)/4)
	body := map[string]any{
		"id":      "chatcmpl-fake-" + strconv.FormatInt(n, 10),
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   req.Model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": content},
			"finish_reason": "stop",
		}},
		"usage": map[string]any{"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

// writeError writes f as {"error": {...}} (OpenAI, Groq) or, for vLLM faults, as vLLM's
// flat error object.
func writeError(w http.ResponseWriter, f *Fault) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.Status)
	if f.VLLM {
		json.NewEncoder(w).Encode(map[string]any{
			"object": "error", "message": f.Message, "type": f.Type, "param": nil, "code": f.Status,
		})
		return
	}
	var code any
	if f.Code != "" {
		code = f.Code
	}
	json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"message": f.Message, "type": f.Type, "code": code},
	})
}

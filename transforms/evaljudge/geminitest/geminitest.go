// Package geminitest runs a fake Gemini generateContent endpoint on 127.0.0.1 for tests and
// benchmarks. It speaks the real wire protocol of both back-ends of google.golang.org/genai,
// so clients are tested through the SDK unchanged:
//
//   - Gemini API: POST /v1beta/models/{model}:generateContent, the key in the x-goog-api-key
//     header (what genai sends) or the key query parameter;
//   - Vertex AI: POST /v1beta1/projects/{project}/locations/{location}/publishers/google/
//     models/{model}:generateContent, an OAuth bearer token in Authorization.
//
// Answers are GenerateContentResponse bodies (candidates, usageMetadata, modelVersion) and
// errors are Google's {"error": {"code", "message", "status", "details"}}. Behaviour is
// scripted like transforms/llm/llmtest: a Responder writes each answer's text, a fixed
// Latency delays every answer, and Faults (a queue consumed by the next requests, or a
// function of the request) inject 429s with Retry-After, 500s, slow answers, invalid or
// schema-breaking JSON text and blocked prompts.
package geminitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Back-ends, as recorded in Request.Backend.
const (
	BackendGeminiAPI = "gemini"
	BackendVertexAI  = "vertex"
)

// Part is one part of a content; the fake reads text parts only.
type Part struct {
	Text string `json:"text,omitempty"`
}

// Content is one turn of a conversation ("user" or "model") or the system instruction.
type Content struct {
	Role  string `json:"role,omitempty"`
	Parts []Part `json:"parts"`
}

// Text joins the content's text parts.
func (c Content) Text() string {
	parts := make([]string, len(c.Parts))
	for i, p := range c.Parts {
		parts[i] = p.Text
	}
	return strings.Join(parts, "")
}

// GenerationConfig is the part of a request's generationConfig the fake decodes. Pointer
// fields are nil when the client did not send them; ResponseSchema is kept as sent.
type GenerationConfig struct {
	Temperature      *float64        `json:"temperature"`
	TopP             *float64        `json:"topP"`
	MaxOutputTokens  *int            `json:"maxOutputTokens"`
	CandidateCount   *int            `json:"candidateCount"`
	ResponseMIMEType string          `json:"responseMimeType"`
	ResponseSchema   json.RawMessage `json:"responseSchema"`
}

// Request is a decoded generateContent request and where it was sent.
type Request struct {
	Backend           string `json:"-"` // BackendGeminiAPI or BackendVertexAI
	APIVersion        string `json:"-"` // "v1beta", "v1beta1", "v1"
	Project, Location string `json:"-"` // Vertex AI only
	Model             string `json:"-"` // as in the path: "gemini-2.0-flash"
	// KeySource says how a Gemini API request carried its key: "header", "query" or "".
	// The key itself is not recorded, so test failures never print it.
	KeySource         string           `json:"-"`
	Contents          []Content        `json:"contents"`
	SystemInstruction *Content         `json:"systemInstruction"`
	GenerationConfig  GenerationConfig `json:"generationConfig"`
}

// Text returns the system instruction and every turn's text joined by newlines.
func (r Request) Text() string {
	var parts []string
	if r.SystemInstruction != nil {
		parts = append(parts, r.SystemInstruction.Text())
	}
	for _, c := range r.Contents {
		parts = append(parts, c.Text())
	}
	return strings.Join(parts, "\n")
}

// LastUserText returns the text of the last turn: the question being asked.
func (r Request) LastUserText() string {
	if len(r.Contents) == 0 {
		return ""
	}
	return r.Contents[len(r.Contents)-1].Text()
}

// Responder writes the answer text for a request, or returns a Fault to answer with.
type Responder func(req Request) (text string, fault *Fault)

// Config configures a Server. The zero value answers every request with "ok" at once and
// accepts any credentials.
type Config struct {
	// APIKey, when set, is the key every Gemini API request must carry (x-goog-api-key
	// header or key query parameter): a missing key gets 403 PERMISSION_DENIED, a wrong one
	// 400 INVALID_ARGUMENT (API_KEY_INVALID), as the real API answers.
	APIKey string
	// BearerToken, when set, is the OAuth token every Vertex AI request must carry as
	// "Authorization: Bearer <BearerToken>"; others get 401 UNAUTHENTICATED.
	BearerToken string
	// Latency delays every answer (errors included), like a model's generation time.
	Latency time.Duration
	// Responder writes answers; nil answers "ok".
	Responder Responder
	// Fault, when set, is consulted for every request after the fault queue; a non-nil
	// Fault is answered instead of calling the Responder. n counts requests from 1.
	Fault func(n int64, req Request) *Fault
	// Models, when non-empty, are the models served; others get 404 NOT_FOUND.
	Models []string
}

// Server is a running fake endpoint. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give genai as HTTPOptions.BaseURL: "http://127.0.0.1:PORT/".
	URL string

	cfg   Config
	srv   *httptest.Server
	total atomic.Int64

	mu      sync.Mutex
	byModel map[string]int
	queue   []*Fault
	all     []Request
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
	// "{model}:generateContent" is one path segment, so the method is split off by hand.
	mux.HandleFunc("POST /{version}/models/{call}", func(w http.ResponseWriter, r *http.Request) {
		s.handle(w, r, BackendGeminiAPI)
	})
	mux.HandleFunc("POST /{version}/projects/{project}/locations/{location}/publishers/google/models/{call}", func(w http.ResponseWriter, r *http.Request) {
		s.handle(w, r, BackendVertexAI)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.total.Add(1)
		writeError(w, &Fault{Status: http.StatusNotFound, GoogleStatus: "NOT_FOUND", Message: "no route for " + r.Method + " " + r.URL.Path})
	})
	s.srv = httptest.NewServer(mux) // listens on 127.0.0.1
	s.URL = s.srv.URL + "/"
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

// Requests is the number of HTTP requests received (authorized or not, routed or not).
func (s *Server) Requests() int64 { return s.total.Load() }

// RequestsFor is the number of generateContent requests received for model.
func (s *Server) RequestsFor(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byModel[model]
}

// LastRequest returns the last decoded request.
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return Request{}
	}
	return s.all[len(s.all)-1]
}

// AllRequests returns every decoded request, in arrival order.
func (s *Server) AllRequests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.all...)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, backend string) {
	n := s.total.Add(1)
	version := r.PathValue("version")
	model, method, _ := strings.Cut(r.PathValue("call"), ":")
	if version != "v1" && version != "v1beta" && version != "v1beta1" {
		writeError(w, &Fault{Status: http.StatusNotFound, GoogleStatus: "NOT_FOUND", Message: "unknown API version " + version})
		return
	}
	if method != "generateContent" {
		writeError(w, &Fault{Status: http.StatusNotFound, GoogleStatus: "NOT_FOUND", Message: fmt.Sprintf("method %q is not served by this fake; only generateContent", method)})
		return
	}
	req := Request{Backend: backend, APIVersion: version, Model: model}
	if backend == BackendVertexAI {
		req.Project, req.Location = r.PathValue("project"), r.PathValue("location")
	}
	key := r.Header.Get("x-goog-api-key")
	switch {
	case key != "":
		req.KeySource = "header"
	case r.URL.Query().Get("key") != "":
		key, req.KeySource = r.URL.Query().Get("key"), "query"
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, BadRequest("Invalid JSON payload received. "+err.Error()))
		return
	}
	if len(req.Contents) == 0 {
		writeError(w, BadRequest("* GenerateContentRequest.contents: contents is not specified"))
		return
	}
	s.mu.Lock()
	s.byModel[req.Model]++
	s.all = append(s.all, req)
	var fault *Fault
	if len(s.queue) > 0 {
		fault, s.queue = s.queue[0], s.queue[1:]
	}
	s.mu.Unlock()

	if f := s.authFault(backend, key, r.Header.Get("Authorization")); f != nil {
		writeError(w, f)
		return
	}
	if fault == nil && s.cfg.Fault != nil {
		fault = s.cfg.Fault(n, req)
	}
	if fault == nil && len(s.cfg.Models) > 0 && !contains(s.cfg.Models, req.Model) {
		fault = NotFound(req.Model)
	}
	text := "ok"
	if fault == nil && s.cfg.Responder != nil {
		text, fault = s.cfg.Responder(req)
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
	if fault != nil && fault.Text != nil {
		text = *fault.Text
	}
	if fault != nil && fault.BlockReason != "" {
		writeBlocked(w, n, req, fault.BlockReason)
		return
	}
	writeResponse(w, n, req, text)
}

// authFault checks credentials the way each back-end does; nil means accepted.
func (s *Server) authFault(backend, key, authorization string) *Fault {
	switch {
	case backend == BackendGeminiAPI && s.cfg.APIKey != "" && key == "":
		return &Fault{Status: http.StatusForbidden, GoogleStatus: "PERMISSION_DENIED",
			Message: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."}
	case backend == BackendGeminiAPI && s.cfg.APIKey != "" && key != s.cfg.APIKey:
		// Like the real API, the message does not echo the key that was sent.
		return &Fault{Status: http.StatusBadRequest, GoogleStatus: "INVALID_ARGUMENT",
			Message: "API key not valid. Please pass a valid API key.",
			Details: []map[string]any{{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}}}
	case backend == BackendVertexAI && s.cfg.BearerToken != "" && authorization != "Bearer "+s.cfg.BearerToken:
		return &Fault{Status: http.StatusUnauthorized, GoogleStatus: "UNAUTHENTICATED",
			Message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."}
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// usage counts tokens by the 4-characters-per-token rule of thumb, so they are
// deterministic.
func usage(req Request, text string) map[string]any {
	pt, ct := max(1, len(req.Text())/4), max(1, len(text)/4)
	return map[string]any{"promptTokenCount": pt, "candidatesTokenCount": ct, "totalTokenCount": pt + ct}
}

// writeResponse writes a GenerateContentResponse with one candidate.
func writeResponse(w http.ResponseWriter, n int64, req Request, text string) {
	body := map[string]any{
		"candidates": []any{map[string]any{
			"content":      map[string]any{"role": "model", "parts": []any{map[string]any{"text": text}}},
			"finishReason": "STOP",
			"index":        0,
		}},
		"usageMetadata": usage(req, text),
		"modelVersion":  req.Model,
		"responseId":    "fake-" + strconv.FormatInt(n, 10),
	}
	if req.Backend == BackendVertexAI {
		body["createTime"] = time.Now().UTC().Format(time.RFC3339Nano)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	json.NewEncoder(w).Encode(body)
}

// writeBlocked writes a response without candidates, as for a prompt the safety filters
// blocked.
func writeBlocked(w http.ResponseWriter, n int64, req Request, reason string) {
	pt := max(1, len(req.Text())/4)
	body := map[string]any{
		"promptFeedback": map[string]any{"blockReason": reason},
		"usageMetadata":  map[string]any{"promptTokenCount": pt, "totalTokenCount": pt},
		"modelVersion":   req.Model,
		"responseId":     "fake-" + strconv.FormatInt(n, 10),
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	json.NewEncoder(w).Encode(body)
}

// writeError writes f as Google's error body.
func writeError(w http.ResponseWriter, f *Fault) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(f.Status)
	e := map[string]any{"code": f.Status, "message": f.Message, "status": f.GoogleStatus}
	if len(f.Details) > 0 {
		e["details"] = f.Details
	}
	json.NewEncoder(w).Encode(map[string]any{"error": e})
}

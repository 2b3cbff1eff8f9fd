package geminitest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge/geminitest"
)

const (
	testKey   = "AIza-TEST-never-log-me"
	testToken = "ya29.test-token"
)

// bearer adds a fixed OAuth token to every request, standing in for ADC credentials.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// clients returns a genai client per back-end pointed at s.
func clients(t *testing.T, s *geminitest.Server) map[string]*genai.Client {
	t.Helper()
	ctx := context.Background()
	gem, err := genai.NewClient(ctx, &genai.ClientConfig{
		Backend: genai.BackendGeminiAPI, APIKey: testKey,
		HTTPOptions: genai.HTTPOptions{BaseURL: s.URL}, HTTPClient: &http.Client{},
	})
	if err != nil {
		t.Fatal(err)
	}
	vtx, err := genai.NewClient(ctx, &genai.ClientConfig{
		Backend: genai.BackendVertexAI, Project: "proj-1", Location: "us-central1",
		HTTPOptions: genai.HTTPOptions{BaseURL: s.URL}, HTTPClient: &http.Client{Transport: bearer{testToken}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*genai.Client{geminitest.BackendGeminiAPI: gem, geminitest.BackendVertexAI: vtx}
}

// TestGenAIBothBackends drives the fake through the real SDK: paths, credentials, the
// request body and the response shape must all be what genai sends and expects.
func TestGenAIBothBackends(t *testing.T) {
	s := geminitest.Start(t, geminitest.Config{
		APIKey: testKey, BearerToken: testToken, Models: []string{"gemini-2.0-flash"},
		Responder: func(r geminitest.Request) (string, *geminitest.Fault) {
			return `{"echo": "` + r.LastUserText() + `"}`, nil
		},
	})
	for backend, c := range clients(t, s) {
		t.Run(backend, func(t *testing.T) {
			cfg := &genai.GenerateContentConfig{
				SystemInstruction: genai.NewContentFromText("be a judge", genai.RoleUser),
				Temperature:       genai.Ptr[float32](0),
				MaxOutputTokens:   256,
				ResponseMIMEType:  "application/json",
				ResponseSchema:    &genai.Schema{Type: genai.TypeObject, Properties: map[string]*genai.Schema{"echo": {Type: genai.TypeString}}, Required: []string{"echo"}},
			}
			res, err := c.Models.GenerateContent(context.Background(), "gemini-2.0-flash", genai.Text("hi"), cfg)
			if err != nil {
				t.Fatalf("GenerateContent: %v", err)
			}
			if got := res.Text(); got != `{"echo": "hi"}` {
				t.Errorf("text: got %q, want the echo", got)
			}
			if res.UsageMetadata == nil || res.UsageMetadata.PromptTokenCount == 0 || res.UsageMetadata.CandidatesTokenCount == 0 {
				t.Errorf("usage: got %+v, want prompt and candidate tokens", res.UsageMetadata)
			}
			if res.ModelVersion != "gemini-2.0-flash" || res.Candidates[0].FinishReason != genai.FinishReasonStop {
				t.Errorf("got modelVersion %q finishReason %q, want gemini-2.0-flash and STOP", res.ModelVersion, res.Candidates[0].FinishReason)
			}
			req := s.LastRequest()
			want := geminitest.Request{Backend: backend, APIVersion: "v1beta", Model: "gemini-2.0-flash", KeySource: "header"}
			if backend == geminitest.BackendVertexAI {
				want.APIVersion, want.Project, want.Location, want.KeySource = "v1beta1", "proj-1", "us-central1", ""
			}
			if req.Backend != want.Backend || req.APIVersion != want.APIVersion || req.Model != want.Model ||
				req.Project != want.Project || req.Location != want.Location || req.KeySource != want.KeySource {
				t.Errorf("routing: got %+v, want %+v", req, want)
			}
			gc := req.GenerationConfig
			if gc.Temperature == nil || *gc.Temperature != 0 || gc.MaxOutputTokens == nil || *gc.MaxOutputTokens != 256 || gc.ResponseMIMEType != "application/json" {
				t.Errorf("generationConfig: got %+v, want temperature 0, 256 tokens, application/json", gc)
			}
			var schema map[string]any
			if err := json.Unmarshal(gc.ResponseSchema, &schema); err != nil || schema["type"] == nil {
				t.Errorf("responseSchema: got %s (%v), want an object schema", gc.ResponseSchema, err)
			}
			if req.SystemInstruction == nil || req.SystemInstruction.Text() != "be a judge" || req.LastUserText() != "hi" {
				t.Errorf("contents: got system %+v and last turn %q, want \"be a judge\" and \"hi\"", req.SystemInstruction, req.LastUserText())
			}
		})
	}
	if got := s.RequestsFor("gemini-2.0-flash"); got != 2 {
		t.Errorf("RequestsFor: got %d, want 2", got)
	}
}

func TestFaultsThroughGenAI(t *testing.T) {
	s := geminitest.Start(t, geminitest.Config{APIKey: testKey, BearerToken: testToken})
	cs := clients(t, s)
	gem, vtx := cs[geminitest.BackendGeminiAPI], cs[geminitest.BackendVertexAI]
	ctx := context.Background()
	tests := []struct {
		name       string
		c          *genai.Client
		fault      *geminitest.Fault
		wantCode   int
		wantStatus string
	}{
		{"429", gem, geminitest.RateLimited(1500 * time.Millisecond), 429, "RESOURCE_EXHAUSTED"},
		{"500 vertex", vtx, geminitest.ServerError(), 500, "INTERNAL"},
		{"503", gem, geminitest.Unavailable(), 503, "UNAVAILABLE"},
		{"404", vtx, geminitest.NotFound("gemini-9"), 404, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Enqueue(tt.fault)
			_, err := tt.c.Models.GenerateContent(ctx, "gemini-2.0-flash", genai.Text("x"), nil)
			var ae genai.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got error %v, want a genai.APIError", err)
			}
			if ae.Code != tt.wantCode || ae.Status != tt.wantStatus {
				t.Errorf("got code %d status %q, want %d %q", ae.Code, ae.Status, tt.wantCode, tt.wantStatus)
			}
			if tt.wantCode == 429 && (len(ae.Details) == 0 || ae.Details[0]["retryDelay"] != "2s") {
				t.Errorf("details: got %v, want a RetryInfo with retryDelay 2s", ae.Details)
			}
		})
	}

	t.Run("text faults", func(t *testing.T) {
		s.Enqueue(geminitest.InvalidJSON(), geminitest.SchemaBreaking(), geminitest.Blocked())
		for _, want := range []string{`"constraint_compl`, `"winner": "C"`} {
			res, err := gem.Models.GenerateContent(ctx, "gemini-2.0-flash", genai.Text("x"), nil)
			if err != nil || !strings.Contains(res.Text(), want) {
				t.Errorf("got %v, %v; want a 200 whose text contains %s", res, err, want)
			}
		}
		res, err := gem.Models.GenerateContent(ctx, "gemini-2.0-flash", genai.Text("x"), nil)
		if err != nil || len(res.Candidates) != 0 || res.PromptFeedback == nil || res.PromptFeedback.BlockReason != genai.BlockedReasonSafety {
			t.Errorf("got %+v, %v; want a 200 without candidates, blocked for SAFETY", res, err)
		}
	})

	t.Run("credentials", func(t *testing.T) {
		bad, err := genai.NewClient(ctx, &genai.ClientConfig{Backend: genai.BackendGeminiAPI, APIKey: "wrong",
			HTTPOptions: genai.HTTPOptions{BaseURL: s.URL}, HTTPClient: &http.Client{}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.Models.GenerateContent(ctx, "gemini-2.0-flash", genai.Text("x"), nil)
		var ae genai.APIError
		if !errors.As(err, &ae) || ae.Code != 400 || !strings.Contains(ae.Message, "API key not valid") {
			t.Errorf("wrong key: got %v, want 400 API key not valid", err)
		}
		noauth, err := genai.NewClient(ctx, &genai.ClientConfig{Backend: genai.BackendVertexAI, Project: "p", Location: "l",
			HTTPOptions: genai.HTTPOptions{BaseURL: s.URL}, HTTPClient: &http.Client{}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = noauth.Models.GenerateContent(ctx, "gemini-2.0-flash", genai.Text("x"), nil)
		if !errors.As(err, &ae) || ae.Code != 401 || ae.Status != "UNAUTHENTICATED" {
			t.Errorf("no token: got %v, want 401 UNAUTHENTICATED", err)
		}
	})
}

// TestWireFormat checks the raw HTTP answers: the key in the query string, Retry-After,
// Google's error body and unknown routes.
func TestWireFormat(t *testing.T) {
	s := geminitest.Start(t, geminitest.Config{APIKey: testKey})
	const body = `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	post := func(path string) (*http.Response, map[string]any) {
		t.Helper()
		res, err := http.Post(strings.TrimSuffix(s.URL, "/")+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return res, m
	}
	res, m := post("/v1beta/models/gemini-2.0-flash:generateContent?key=" + testKey)
	if res.StatusCode != 200 || m["candidates"] == nil || s.LastRequest().KeySource != "query" {
		t.Errorf("key in query: got %d %v (key source %q), want 200 with candidates", res.StatusCode, m, s.LastRequest().KeySource)
	}
	s.Enqueue(geminitest.RateLimited(time.Second))
	res, m = post("/v1beta/models/gemini-2.0-flash:generateContent?key=" + testKey)
	e, _ := m["error"].(map[string]any)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "1" || e["status"] != "RESOURCE_EXHAUSTED" || e["code"] != float64(429) {
		t.Errorf("429: got %d Retry-After %q body %v, want Google's RESOURCE_EXHAUSTED with Retry-After 1", res.StatusCode, res.Header.Get("Retry-After"), m)
	}
	res, _ = post("/v1beta/models/gemini-2.0-flash:generateContent")
	if res.StatusCode != 403 {
		t.Errorf("no key: got %d, want 403", res.StatusCode)
	}
	res, _ = post("/v1beta/models/gemini-2.0-flash:countTokens?key=" + testKey)
	if res.StatusCode != 404 {
		t.Errorf("countTokens: got %d, want 404", res.StatusCode)
	}
	if got := s.Requests(); got != 4 {
		t.Errorf("Requests: got %d, want 4", got)
	}
}

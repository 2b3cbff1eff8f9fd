package llmtest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

func post(t *testing.T, url, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func TestWireFormat(t *testing.T) {
	s := llmtest.Start(t, llmtest.Config{APIKey: "k", Responder: func(r llmtest.ChatRequest) (string, *llmtest.Fault) {
		return "hello " + r.Messages[0].Content, nil
	}})
	const body = `{"model":"m1","messages":[{"role":"user","content":"you"}],"temperature":0,"seed":7,"response_format":{"type":"json_object"}}`
	s.Enqueue(llmtest.RateLimited(1500*time.Millisecond), llmtest.ModelNotFound("m1"))

	tests := []struct {
		name, path, key string
		wantStatus      int
		check           func(t *testing.T, res *http.Response, m map[string]any)
	}{
		{"429 with Retry-After", "/v1/chat/completions", "k", 429, func(t *testing.T, res *http.Response, m map[string]any) {
			if got := res.Header.Get("Retry-After"); got != "2" {
				t.Errorf("Retry-After: got %q, want 2", got)
			}
			if e, _ := m["error"].(map[string]any); e["code"] != "rate_limit_exceeded" {
				t.Errorf("error: got %v, want code rate_limit_exceeded", m["error"])
			}
		}},
		{"vLLM 404", "/v1/chat/completions", "k", 404, func(t *testing.T, _ *http.Response, m map[string]any) {
			if m["object"] != "error" || m["code"] != float64(404) {
				t.Errorf("body: got %v, want vLLM's flat error with code 404", m)
			}
		}},
		{"wrong key", "/v1/chat/completions", "x", 401, nil},
		{"completion without /v1", "/chat/completions", "k", 200, func(t *testing.T, _ *http.Response, m map[string]any) {
			choice := m["choices"].([]any)[0].(map[string]any)
			if got := choice["message"].(map[string]any)["content"]; got != "hello you" {
				t.Errorf("content: got %v, want %q", got, "hello you")
			}
			if m["object"] != "chat.completion" || m["usage"].(map[string]any)["total_tokens"] == nil {
				t.Errorf("body: got %v, want a chat.completion with usage", m)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := post(t, strings.TrimSuffix(s.URL, "/v1")+tt.path, tt.key, body)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", res.StatusCode, tt.wantStatus)
			}
			var m map[string]any
			if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, res, m)
			}
		})
	}
	if got := s.Requests(); got != 4 {
		t.Errorf("Requests: got %d, want 4", got)
	}
	if got := s.RequestsFor("m1"); got != 4 {
		t.Errorf("RequestsFor(m1): got %d, want 4", got)
	}
	last := s.LastRequest()
	if last.Temperature == nil || *last.Temperature != 0 || last.Seed == nil || *last.Seed != 7 || last.ResponseFormat.Type != "json_object" {
		t.Errorf("LastRequest: got %+v, want temperature 0, seed 7, json_object", last)
	}
}

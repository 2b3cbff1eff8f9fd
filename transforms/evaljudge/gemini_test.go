package evaljudge

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge/geminitest"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// TestGeminiJudgeWire checks what the judge sends on both back-ends: the route, the
// credentials, temperature 0, JSON mode with VerdictSchema, the system instruction and the
// prompt; and what it reads back.
func TestGeminiJudgeWire(t *testing.T) {
	p, c := fixture(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			s := startServer(t, geminitest.Config{Responder: fairJudge, Models: []string{judgeModel}})
			j := newJudge(t, backend, s, testCaller(t, fastLimits(), llm.NewMemCache()))
			v, err := j.Judge(context.Background(), Request{Persona: p, Case: c, RecipeA: chickenTikka, RecipeB: palakPaneer})
			if err != nil {
				t.Fatalf("Judge: %v", err)
			}
			if v.Winner != WinnerB || v.Confidence != schemas.ConfidenceHigh || v.ScoresB.OverallSuitability != 9 || v.ScoresA.PersonaAlignment != 3 || v.Reasoning != "because" {
				t.Errorf("verdict: got %+v, want B with high confidence, B scored 9 and A 3", v)
			}
			if v.Model != judgeModel || v.PromptTokens == 0 || v.CompletionTokens == 0 || v.CacheHit {
				t.Errorf("usage: got model %q, tokens %d/%d, cache hit %v; want %s, non-zero tokens, no hit", v.Model, v.PromptTokens, v.CompletionTokens, v.CacheHit, judgeModel)
			}

			req := s.LastRequest()
			if req.Backend != backend || req.Model != judgeModel {
				t.Errorf("route: got backend %q model %q, want %q %q", req.Backend, req.Model, backend, judgeModel)
			}
			if backend == backendVtx && (req.APIVersion != "v1beta1" || req.Project != testProject || req.Location != testRegion) {
				t.Errorf("Vertex route: got %s/projects/%s/locations/%s, want v1beta1/projects/%s/locations/%s", req.APIVersion, req.Project, req.Location, testProject, testRegion)
			}
			if backend == backendGem && (req.APIVersion != "v1beta" || req.KeySource != "header") {
				t.Errorf("Gemini API route: got version %q key in %q, want v1beta with the key in the header", req.APIVersion, req.KeySource)
			}
			gc := req.GenerationConfig
			if gc.Temperature == nil || *gc.Temperature != 0 || gc.ResponseMIMEType != "application/json" || gc.MaxOutputTokens == nil || *gc.MaxOutputTokens != judgeMaxTokens {
				t.Errorf("generationConfig: got %+v, want temperature 0, application/json, %d tokens", gc, judgeMaxTokens)
			}
			var schema struct {
				Required   []string                  `json:"required"`
				Properties map[string]map[string]any `json:"properties"`
			}
			if err := json.Unmarshal(gc.ResponseSchema, &schema); err != nil || !slices.Equal(schema.Required, verdictFields) {
				t.Errorf("responseSchema: got required %v (%v), want %v", schema.Required, err, verdictFields)
			}
			if req.SystemInstruction == nil || req.SystemInstruction.Text() != systemPrompt {
				t.Errorf("system instruction: got %+v, want the judge's system prompt", req.SystemInstruction)
			}
			if len(req.Contents) != 1 || req.Contents[0].Role != "user" {
				t.Fatalf("contents: got %+v, want one user turn", req.Contents)
			}
			q := req.Contents[0].Text()
			for _, want := range []string{"Indian Vegetarian", "Forbidden ingredients (must never appear, including hidden sources): meat, seafood", c.Request, "Test category: constraint_stress", "<recipe_a>\n" + chickenTikka, "<recipe_b>\n" + palakPaneer, "5. overall_suitability"} {
				if !strings.Contains(q, want) {
					t.Errorf("prompt lacks %q:\n%s", want, q)
				}
			}
		})
	}
}

// TestGeminiJudgeFaults drives the retry, repair and cache paths on both back-ends.
func TestGeminiJudgeFaults(t *testing.T) {
	p, c := fixture(t)
	req := Request{Persona: p, Case: c, RecipeA: chickenTikka, RecipeB: palakPaneer}
	tests := []struct {
		name         string
		faults       []*geminitest.Fault
		timeout      time.Duration // per attempt; 0 keeps fastLimits'
		wantRequests int64
		wantErr      error  // errors.Is target; nil for success
		wantClass    string // llm.Classify of the error
		check        func(t *testing.T, s *geminitest.Server, rec *sleepRecorder, v Verdict)
	}{
		{
			name: "429 then success honours Retry-After", faults: []*geminitest.Fault{geminitest.RateLimited(3 * time.Second)},
			wantRequests: 2,
			check: func(t *testing.T, _ *geminitest.Server, rec *sleepRecorder, v Verdict) {
				if got := rec.max(); got < 3*time.Second {
					t.Errorf("longest backoff: got %v, want >= 3s (Retry-After)", got)
				}
			},
		},
		{
			name: "503 then success", faults: []*geminitest.Fault{geminitest.Unavailable()}, wantRequests: 2,
		},
		{
			name: "500 until retries are exhausted", faults: []*geminitest.Fault{geminitest.ServerError(), geminitest.ServerError(), geminitest.ServerError(), geminitest.ServerError()},
			wantRequests: 4, wantErr: errAny, wantClass: llm.ClassServerError,
		},
		{
			name: "slow answer times out and is retried", faults: []*geminitest.Fault{geminitest.Slow(5 * time.Second)}, timeout: 300 * time.Millisecond,
			wantRequests: 2,
		},
		{
			name: "invalid JSON then repaired", faults: []*geminitest.Fault{geminitest.InvalidJSON()}, wantRequests: 2,
			check: func(t *testing.T, s *geminitest.Server, _ *sleepRecorder, v Verdict) {
				all := s.AllRequests()
				repair := all[len(all)-1]
				roles := []string{}
				for _, c := range repair.Contents {
					roles = append(roles, c.Role)
				}
				if !slices.Equal(roles, []string{"user", "model", "user"}) {
					t.Fatalf("repair turns: got roles %v, want user, model, user", roles)
				}
				if repair.Contents[0].Text() != all[0].Contents[0].Text() || repair.Contents[1].Text() != *geminitest.InvalidJSON().Text {
					t.Errorf("repair: got turns %+v, want the original question and the bad answer", repair.Contents[:2])
				}
				if ask := repair.Contents[2].Text(); !strings.Contains(ask, "could not be used: not a JSON verdict object") || !strings.Contains(ask, "corrected JSON object only") {
					t.Errorf("repair request: got %q, want the parse error and a request for corrected JSON only", ask)
				}
				if repair.GenerationConfig.ResponseMIMEType != "application/json" || len(repair.GenerationConfig.ResponseSchema) == 0 {
					t.Errorf("repair generationConfig: got %+v, want JSON mode with the schema", repair.GenerationConfig)
				}
				if v.Winner != WinnerB {
					t.Errorf("repaired verdict: got winner %q, want B", v.Winner)
				}
			},
		},
		{
			name: "schema-breaking twice", faults: []*geminitest.Fault{geminitest.SchemaBreaking(), geminitest.SchemaBreaking()},
			wantRequests: 2, wantErr: ErrBadVerdict, wantClass: llm.ClassBadVerdict,
		},
		{
			name: "schema-breaking then 429 on the repair, then repaired", faults: []*geminitest.Fault{geminitest.SchemaBreaking(), geminitest.RateLimited(time.Second)},
			wantRequests: 3,
		},
		{
			name: "blocked prompt is not repaired", faults: []*geminitest.Fault{geminitest.Blocked()},
			wantRequests: 1, wantErr: llm.ErrBadResponse, wantClass: llm.ClassBadResponse,
		},
		{
			name: "400 is final", faults: []*geminitest.Fault{geminitest.BadRequest("* GenerationConfig.response_schema: bad")},
			wantRequests: 1, wantErr: errAny, wantClass: llm.ClassBadRequest,
		},
	}
	for _, backend := range backends {
		for _, tt := range tests {
			t.Run(backend+"/"+tt.name, func(t *testing.T) {
				s := startServer(t, geminitest.Config{Responder: fairJudge})
				s.Enqueue(tt.faults...)
				rec := &sleepRecorder{}
				l := fastLimits()
				if tt.timeout > 0 {
					l.Timeout = tt.timeout
				}
				cache := llm.NewMemCache()
				j := newJudge(t, backend, s, testCaller(t, l, cache, llm.WithSleep(rec.sleep)))
				v, err := j.Judge(context.Background(), req)
				if got := s.Requests(); got != tt.wantRequests {
					t.Errorf("requests: got %d, want %d", got, tt.wantRequests)
				}
				if tt.wantErr != nil {
					if err == nil {
						t.Fatalf("got verdict %+v and no error, want an error", v)
					}
					if tt.wantErr != errAny && !errors.Is(err, tt.wantErr) {
						t.Errorf("got error %v, want it to wrap %v", err, tt.wantErr)
					}
					if got := llm.Classify(err); got != tt.wantClass {
						t.Errorf("Classify: got %q, want %q (error %v)", got, tt.wantClass, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Judge: %v", err)
				}
				if v.Winner != WinnerB || v.Model != judgeModel {
					t.Errorf("verdict: got winner %q model %q, want B from %s", v.Winner, v.Model, judgeModel)
				}
				if tt.check != nil {
					tt.check(t, s, rec, v)
				}
				// The same question again is answered from the cache, repairs included.
				again, err := j.Judge(context.Background(), req)
				if err != nil {
					t.Fatalf("second Judge: %v", err)
				}
				if got := s.Requests(); got != tt.wantRequests {
					t.Errorf("requests after a repeat: got %d, want %d (no new request)", got, tt.wantRequests)
				}
				v.CacheHit = true
				if !again.CacheHit || again != v {
					t.Errorf("repeat: got %+v, want %+v from the cache", again, v)
				}
			})
		}
	}
}

// errAny is a wantErr that accepts any error.
var errAny = errors.New("any error")

// TestGeminiRepairFailureNotCached: after a failed repair a re-run asks the repair again
// (the unusable first answer is replayed from the cache).
func TestGeminiRepairFailureNotCached(t *testing.T) {
	p, c := fixture(t)
	s := startServer(t, geminitest.Config{Responder: fairJudge})
	s.Enqueue(geminitest.InvalidJSON(), geminitest.SchemaBreaking())
	j := newJudge(t, backendGem, s, testCaller(t, fastLimits(), llm.NewMemCache()))
	req := Request{Persona: p, Case: c, RecipeA: chickenTikka, RecipeB: palakPaneer}
	if _, err := j.Judge(context.Background(), req); !errors.Is(err, ErrBadVerdict) {
		t.Fatalf("first run: got %v, want ErrBadVerdict", err)
	}
	v, err := j.Judge(context.Background(), req)
	if err != nil || v.Winner != WinnerB || v.CacheHit {
		t.Fatalf("re-run: got %+v, %v; want a fresh repaired verdict for B", v, err)
	}
	if got := s.Requests(); got != 3 {
		t.Errorf("requests: got %d, want 3 (question, bad repair, repair again)", got)
	}
}

func TestGeminiConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  GeminiConfig
		want string // "" for valid
	}{
		{"gemini api", GeminiConfig{Backend: genai.BackendGeminiAPI, APIKey: testKey}, ""},
		{"vertex", GeminiConfig{Backend: genai.BackendVertexAI, Project: "p", Location: "l"}, ""},
		{"gemini api without key", GeminiConfig{Backend: genai.BackendGeminiAPI}, "needs an API key"},
		{"gemini api with project", GeminiConfig{Backend: genai.BackendGeminiAPI, APIKey: testKey, Project: "p"}, "--project and --location are for Vertex AI"},
		{"vertex without location", GeminiConfig{Backend: genai.BackendVertexAI, Project: "p"}, "Vertex AI needs --project and --location"},
		{"no backend", GeminiConfig{}, "unknown Gemini back-end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("got %v, want valid", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the API key", err)
			}
			if _, err := NewGeminiJudge(context.Background(), tt.cfg, testCaller(t, fastLimits(), nil)); err == nil {
				t.Errorf("NewGeminiJudge accepted an invalid config")
			}
		})
	}
}

// TestVertexWithoutCredentials: no HTTP client and no ADC is a clear construction error.
func TestVertexWithoutCredentials(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", t.TempDir()+"/missing.json")
	_, err := NewGeminiJudge(context.Background(), GeminiConfig{Backend: genai.BackendVertexAI, Project: "p", Location: "l"}, testCaller(t, fastLimits(), nil))
	if err == nil || !strings.Contains(err.Error(), "Vertex AI credentials") {
		t.Errorf("got %v, want a credentials error", err)
	}
}

func TestAPIKeyFromEnv(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GEMINI_API_KEY": "g"}, "g"},
		{map[string]string{"GOOGLE_API_KEY": "o", "GEMINI_API_KEY": "g"}, "o"},
		{map[string]string{}, ""},
	}
	for _, tt := range tests {
		if got := APIKeyFromEnv(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("APIKeyFromEnv(%v): got %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		header  map[string][]string
		details []map[string]any
		want    time.Duration
	}{
		{"seconds header", map[string][]string{"Retry-After": {"7"}}, nil, 7 * time.Second},
		{"http date header", map[string][]string{"Retry-After": {now.Add(30 * time.Second).Format(timeFormatHTTP)}}, nil, 30 * time.Second},
		{"RetryInfo", nil, []map[string]any{{"@type": "type.googleapis.com/google.rpc.ErrorInfo"}, {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37.5s"}}, 37500 * time.Millisecond},
		{"longer of both", map[string][]string{"Retry-After": {"2"}}, []map[string]any{{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "5s"}}, 5 * time.Second},
		{"none", nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := max(retryAfter(tt.header, now), retryDelay(tt.details)); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// timeFormatHTTP is http.TimeFormat.
const timeFormatHTTP = "Mon, 02 Jan 2006 15:04:05 GMT"

package evaljudge

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge/geminitest"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// Credentials the fake expects; tests check they never leak.
const (
	testKey   = "AIzaSy-TEST-SECRET-never-log-me-42"
	testToken = "ya29.TEST-TOKEN-never-log-me"
)

// Recipes for the Indian vegetarian persona (vegetarian; meat and seafood forbidden).
const (
	// palakPaneer keeps every constraint and is on-profile.
	palakPaneer = `{"title": "Palak Paneer", "cuisine": "Indian", "servings": 4,
 "ingredients": [{"name": "paneer", "quantity": "250 g"}, {"name": "spinach", "quantity": "400 g"},
  {"name": "garam masala", "quantity": "1 tsp"}, {"name": "cumin seeds", "quantity": "1 tsp"},
  {"name": "turmeric", "quantity": "1/2 tsp"}, {"name": "ghee", "quantity": "2 tbsp"},
  {"name": "green chili", "quantity": "2"}, {"name": "garlic", "quantity": "3 cloves"}],
 "steps": ["Blanch and puree the spinach.", "Temper cumin in ghee, add garlic and chili.", "Simmer the puree with spices, fold in paneer."],
 "dietary_tags": ["vegetarian"]}`
	// chickenTikka breaks the vegetarian restriction and the "meat" forbidden entry.
	chickenTikka = `{"title": "Chicken Tikka", "cuisine": "Indian", "servings": 2,
 "ingredients": [{"name": "chicken thighs", "quantity": "500 g"}, {"name": "plain yogurt", "quantity": "150 g"},
  {"name": "garam masala", "quantity": "2 tsp"}, {"name": "fresh ginger", "quantity": "1 tbsp"}],
 "steps": ["Marinate the chicken in yogurt and spices.", "Skewer the pieces.", "Grill until charred."],
 "dietary_tags": []}`
	prose = "Sure! Start by heating oil in a pan, then add the onions and cook until golden."
)

// Violations of chickenTikka for the Indian vegetarian persona.
var chickenViolations = []string{"vegetarian: chicken thighs (meat)", "forbidden: chicken thighs (meat)"}

const (
	indianVeg   = "persona_b_indian_veg"
	stressCase  = "persona_b_indian_veg-constraint_stress-01"
	backendGem  = geminitest.BackendGeminiAPI
	backendVtx  = geminitest.BackendVertexAI
	judgeModel  = DefaultGeminiModel
	testProject = "proj-1"
	testRegion  = "us-central1"
)

var backends = []string{backendGem, backendVtx}

// fixture returns the Indian vegetarian persona and its first constraint-stress case.
func fixture(t testing.TB) (schemas.Persona, schemas.TestCase) {
	t.Helper()
	p, err := schemas.DefaultPersona(indianVeg)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := schemas.DefaultTestCases()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.ID == stressCase {
			return p, c
		}
	}
	t.Fatalf("case %s not found", stressCase)
	return p, schemas.TestCase{}
}

// verdictJSON is a well-formed verdict answer.
func verdictJSON(winner, confidence string, a, b float64) string {
	scores := func(x float64) string {
		parts := make([]string, len(Criteria))
		for i, c := range Criteria {
			parts[i] = fmt.Sprintf("%q: %g", c, x)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprintf(`{"scores_a": %s, "scores_b": %s, "winner": %q, "confidence": %q, "reasoning": "because"}`,
		scores(a), scores(b), winner, confidence)
}

// between returns the text between two markers of s.
func between(s, start, end string) string {
	_, after, _ := strings.Cut(s, start)
	in, _, _ := strings.Cut(after, end)
	return in
}

// fairJudge answers like a consistent judge: the recipe without chicken wins, whatever its
// position, with high confidence.
func fairJudge(r geminitest.Request) (string, *geminitest.Fault) {
	q := r.Contents[0].Text()
	a, b := strings.Contains(between(q, "<recipe_a>", "</recipe_a>"), "chicken"), strings.Contains(between(q, "<recipe_b>", "</recipe_b>"), "chicken")
	switch {
	case a && !b:
		return verdictJSON("B", "high", 3, 9), nil
	case b && !a:
		return verdictJSON("A", "high", 9, 3), nil
	}
	return verdictJSON("tie", "medium", 6, 6), nil
}

// biasedJudge always prefers the first recipe shown.
func biasedJudge(geminitest.Request) (string, *geminitest.Fault) {
	return verdictJSON("A", "medium", 8, 5), nil
}

// sleepRecorder is an injected SleepFunc that records durations and returns at once.
type sleepRecorder struct {
	mu sync.Mutex
	ds []time.Duration
}

func (r *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.ds = append(r.ds, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *sleepRecorder) max() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m time.Duration
	for _, d := range r.ds {
		m = max(m, d)
	}
	return m
}

// fastLimits lets tests run without rate-limit waits; backoffs go to a recorder anyway.
func fastLimits() llm.Limits {
	return llm.Limits{RPM: 1e6, TPM: 0, Concurrency: 8, MaxRetries: 3, Timeout: 2 * time.Second, MaxBackoff: 50 * time.Millisecond}
}

// testCaller builds a Caller or fails the test.
func testCaller(t testing.TB, l llm.Limits, cache llm.Cache, opts ...llm.Option) *llm.Caller {
	t.Helper()
	c, err := llm.NewCaller(t.Name(), l, cache, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startServer runs the fake with both back-ends' credentials.
func startServer(t testing.TB, cfg geminitest.Config) *geminitest.Server {
	t.Helper()
	cfg.APIKey, cfg.BearerToken = testKey, testToken
	return geminitest.Start(t, cfg)
}

// bearer adds a fixed OAuth token to every request, standing in for ADC credentials.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// geminiConfig points a judge of the given back-end at s.
func geminiConfig(backend string, s *geminitest.Server) GeminiConfig {
	if backend == backendVtx {
		return GeminiConfig{Backend: genai.BackendVertexAI, Project: testProject, Location: testRegion,
			BaseURL: s.URL, HTTPClient: &http.Client{Transport: bearer{testToken}}}
	}
	return GeminiConfig{Backend: genai.BackendGeminiAPI, APIKey: testKey, BaseURL: s.URL}
}

// newJudge builds a Gemini judge for backend against s, or fails the test.
func newJudge(t testing.TB, backend string, s *geminitest.Server, caller *llm.Caller) *GeminiJudge {
	t.Helper()
	j, err := NewGeminiJudge(context.Background(), geminiConfig(backend, s), caller)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

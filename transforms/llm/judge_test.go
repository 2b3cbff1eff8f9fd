package llm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/llm/llmtest"
)

const goodVerdict = `{"scores_a": {"dietary_compliance": 10, "forbidden_avoided": 10, "cuisine_alignment": 8, "persona_match": 9},
 "scores_b": {"dietary_compliance": 2, "forbidden_avoided": 0, "cuisine_alignment": 7.5, "persona_match": 4},
 "winner": "A", "confidence": "high", "reasoning": "B uses chicken stock."}`

func veganPersona() schemas.Persona {
	return schemas.Persona{
		ID: "persona_e_mexican_vegan", Name: "Mexican Vegan", Description: "Plant-based Mexican cooking",
		Cuisines: []string{"Mexican", "Latin"}, DietaryRestrictions: []string{"vegan"},
		ForbiddenIngredients: []string{"meat", "dairy", "eggs", "cheese"},
		PreferredIngredients: []string{"black beans", "avocado"}, FlavorNotes: []string{"smoky", "lime"},
	}
}

func pairReq() PairRequest {
	return PairRequest{
		Persona: veganPersona(), Request: "Create a recipe using black beans and corn.",
		RecipeA: `{"title":"Black bean tacos"}`, RecipeB: `{"title":"Chicken enchiladas"}`,
	}
}

func TestParsePairVerdict(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantErr string // "" = valid
		winner  string
	}{
		{name: "good", text: goodVerdict, winner: "A"},
		{name: "fenced", text: "```json\n" + goodVerdict + "\n```", winner: "A"},
		{name: "lower-case b", text: strings.Replace(goodVerdict, `"winner": "A"`, `"winner": "b"`, 1), winner: "B"},
		{name: "tie", text: strings.Replace(goodVerdict, `"winner": "A"`, `"winner": "Tie"`, 1), winner: "tie"},
		{name: "invalid JSON", text: `{"winner": "A", "scores_a": {`, wantErr: "not a JSON verdict"},
		{name: "prose", text: `Recipe A is better.`, wantErr: "not a JSON verdict"},
		{name: "score out of range", text: strings.Replace(goodVerdict, `"persona_match": 9`, `"persona_match": 11`, 1), wantErr: "outside [0, 10]"},
		{name: "negative score", text: strings.Replace(goodVerdict, `"forbidden_avoided": 0`, `"forbidden_avoided": -1`, 1), wantErr: "outside [0, 10]"},
		{name: "score as string", text: strings.Replace(goodVerdict, `"persona_match": 9`, `"persona_match": "9"`, 1), wantErr: "not a JSON verdict"},
		{name: "bad winner", text: strings.Replace(goodVerdict, `"winner": "A"`, `"winner": "Recipe A"`, 1), wantErr: "winner"},
		{name: "bad confidence", text: strings.Replace(goodVerdict, `"high"`, `"very high"`, 1), wantErr: "confidence"},
		{name: "missing score", text: strings.Replace(goodVerdict, `"cuisine_alignment": 8, `, ``, 1), wantErr: "missing scores_a.cuisine_alignment"},
		{name: "missing scores_b", text: `{"scores_a": {"dietary_compliance": 1, "forbidden_avoided": 1, "cuisine_alignment": 1, "persona_match": 1}, "winner": "A", "confidence": "low", "reasoning": ""}`, wantErr: "missing scores_b"},
		{name: "missing reasoning", text: strings.Replace(goodVerdict, `, "reasoning": "B uses chicken stock."`, ``, 1), wantErr: "missing reasoning"},
		{name: "trailing data", text: goodVerdict + ` {"winner": "B"}`, wantErr: "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParsePairVerdict(tt.text)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				if v.Winner != tt.winner {
					t.Errorf("winner: got %q, want %q", v.Winner, tt.winner)
				}
				return
			}
			if !errors.Is(err, ErrBadVerdict) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want ErrBadVerdict mentioning %q", err, tt.wantErr)
			}
		})
	}
	v, _ := ParsePairVerdict(goodVerdict)
	want := schemas.CriterionScores{DietaryCompliance: 2, ForbiddenAvoided: 0, CuisineAlignment: 7.5, PersonaMatch: 4}
	if v.ScoresB != want || v.Confidence != "high" || v.Reasoning != "B uses chicken stock." {
		t.Errorf("verdict: got %+v, want scores_b %+v, high confidence and the reasoning", v, want)
	}
}

func TestOpenAIPairJudge(t *testing.T) {
	srv := startServer(t, llmtest.Config{Responder: func(llmtest.ChatRequest) (string, *llmtest.Fault) { return goodVerdict, nil }})
	cache := NewMemCache()
	judge := NewOpenAIPairJudge(srv.URL, testKey, "", testCaller(t, fastLimits(), cache))
	v, err := judge.JudgePair(context.Background(), pairReq())
	if err != nil {
		t.Fatal(err)
	}
	if v.Winner != WinnerA || v.Model != GroqDefaultModel || v.CacheHit || v.PromptTokens == 0 {
		t.Errorf("verdict: got %+v, want winner A from %s, fresh, with usage", v, GroqDefaultModel)
	}
	req := srv.LastRequest()
	if req.ResponseFormat == nil || req.ResponseFormat.Type != "json_object" {
		t.Errorf("response_format: got %+v, want json_object", req.ResponseFormat)
	}
	if req.Temperature == nil || *req.Temperature != 0 {
		t.Errorf("temperature: got %v, want 0", req.Temperature)
	}
	prompt := req.Text()
	for _, want := range []string{"JSON", "Mexican, Latin", "vegan", "meat, dairy, eggs, cheese", "black beans, avocado", "smoky, lime",
		"Create a recipe using black beans and corn.", "Black bean tacos", "Chicken enchiladas",
		"dietary_compliance", "forbidden_avoided", "cuisine_alignment", "persona_match", `"winner"`, `"confidence"`} {
		if !strings.Contains(prompt, want) {
			t.Errorf("judge prompt: missing %q", want)
		}
	}
	again, err := judge.JudgePair(context.Background(), pairReq())
	if err != nil || !again.CacheHit || srv.Requests() != 1 {
		t.Errorf("second judgement: got hit=%v err=%v requests=%d, want a cache hit and 1 request", again.CacheHit, err, srv.Requests())
	}
}

func TestOpenAIPairJudgeBadVerdicts(t *testing.T) {
	tests := []struct {
		name  string
		fault *llmtest.Fault
	}{
		{"invalid JSON content", llmtest.InvalidJSON()},
		{"score out of range", llmtest.Content(strings.Replace(goodVerdict, `"persona_match": 9`, `"persona_match": 42`, 1))},
		{"bad winner", llmtest.Content(strings.Replace(goodVerdict, `"winner": "A"`, `"winner": "both"`, 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, llmtest.Config{Responder: func(llmtest.ChatRequest) (string, *llmtest.Fault) { return goodVerdict, nil }})
			srv.Enqueue(tt.fault)
			cache := NewMemCache()
			judge := NewOpenAIPairJudge(srv.URL, testKey, "llama-3.1-8b-instant", testCaller(t, fastLimits(), cache))
			_, err := judge.JudgePair(context.Background(), pairReq())
			if !errors.Is(err, ErrBadVerdict) || Classify(err) != ClassBadVerdict {
				t.Fatalf("got %v (class %q), want ErrBadVerdict", err, Classify(err))
			}
			if srv.Requests() != 1 || cache.Len() != 0 {
				t.Errorf("got %d requests and %d cache entries, want 1 request (no retry) and nothing cached", srv.Requests(), cache.Len())
			}
			// Not cached, so a re-run asks again and can succeed.
			if _, err := judge.JudgePair(context.Background(), pairReq()); err != nil {
				t.Errorf("re-run: got %v, want success", err)
			}
		})
	}
}

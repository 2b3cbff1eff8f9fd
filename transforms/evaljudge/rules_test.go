package evaljudge

import (
	"context"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

func TestRulesScoresMapping(t *testing.T) {
	p, _ := fixture(t)
	e := rules.New()
	for _, text := range []string{palakPaneer, chickenTikka} {
		r, err := schemas.ParseRecipe(text)
		if err != nil {
			t.Fatal(err)
		}
		c := e.Score(r, p)
		got := RulesScores(e, text, p)
		want := schemas.EvalScores{
			PersonaAlignment:     c.CuisineAlignment,
			ConstraintCompliance: min(c.DietaryCompliance, c.ForbiddenAvoided),
			PreferredIngredients: c.PersonaMatch,
			RecipeQuality:        structureScore(r),
		}
		want.OverallSuitability = (want.PersonaAlignment + want.ConstraintCompliance + want.PreferredIngredients + want.RecipeQuality) / 4
		if len(got.Violations) > 0 {
			want.OverallSuitability = min(want.OverallSuitability, want.ConstraintCompliance)
		}
		if got.Scores != want || !got.ParsedOK {
			t.Errorf("%s: got %+v (parsed %v), want %+v", r.Title, got.Scores, got.ParsedOK, want)
		}
		if err := got.Scores.Validate(); err != nil {
			t.Errorf("%s: %v", r.Title, err)
		}
	}

	// Fixed points of the mapping, so a change to it is a visible decision.
	paneer, chicken := RulesScores(e, palakPaneer, p), RulesScores(e, chickenTikka, p)
	if paneer.Scores.ConstraintCompliance != 10 || paneer.Scores.RecipeQuality != 10 || len(paneer.Violations) != 0 {
		t.Errorf("palak paneer: got %+v, want full compliance and structure, no violations", paneer)
	}
	// One meat ingredient: vegetarian 10−5 = 5, forbidden 10−8 = 2; the lower counts, and it
	// caps overall suitability.
	if chicken.Scores.ConstraintCompliance != 2 || chicken.Scores.OverallSuitability != 2 || len(chicken.Violations) != 2 {
		t.Errorf("chicken tikka: got %+v, want compliance 2, overall 2, two violations", chicken)
	}
	// Missing quantities, a single step, fewer than 4 ingredients, no cuisine or servings.
	sparse := `{"title": "Dal", "ingredients": [{"name": "red lentils"}], "steps": ["Boil."]}`
	if got := RulesScores(e, sparse, p).Scores.RecipeQuality; got != qualityBase {
		t.Errorf("sparse recipe quality: got %g, want %g", got, qualityBase)
	}
	// Repeated ingredient lines: 5 + cuisine + servings + quantities + steps = 9, but only
	// 2 distinct ingredients (no point) and 3 repeats (−3).
	repeats := `{"title": "Dal", "cuisine": "Indian", "servings": 2, "ingredients": [{"name": "red lentils", "quantity": "1 cup"},
		{"name": "turmeric", "quantity": "1 tsp"}, {"name": "Red lentils", "quantity": "1 cup"}, {"name": "turmeric", "quantity": "1 tsp"},
		{"name": "turmeric", "quantity": "2 tsp"}], "steps": ["Rinse.", "Boil.", "Serve."]}`
	if got := RulesScores(e, repeats, p).Scores.RecipeQuality; got != 6 {
		t.Errorf("repeated-ingredients recipe quality: got %g, want 6", got)
	}
	for _, text := range []string{prose, "", `{"title": "No steps", "ingredients": [{"name": "paneer", "quantity": "1"}], "steps": []}`} {
		got := RulesScores(e, text, p)
		if got.ParsedOK || got.Scores != (schemas.EvalScores{}) || got.ParseError == "" {
			t.Errorf("unparseable %.30q: got %+v, want all-zero scores, not parsed, a parse error", text, got)
		}
	}
}

func TestRulesJudge(t *testing.T) {
	p, c := fixture(t)
	j := NewRulesJudge(nil)
	ctx := context.Background()
	tests := []struct {
		name           string
		a, b           string
		wantWinner     string
		wantConfidence string
		wantReason     string
	}{
		{"forbidden ingredient loses (A)", chickenTikka, palakPaneer, WinnerB, schemas.ConfidenceHigh, "A breaks vegetarian: chicken thighs (meat)"},
		{"forbidden ingredient loses (B)", palakPaneer, chickenTikka, WinnerA, schemas.ConfidenceHigh, "B breaks vegetarian: chicken thighs (meat)"},
		{"unparseable loses", prose, palakPaneer, WinnerB, schemas.ConfidenceHigh, "A is not a parseable recipe"},
		{"unparseable loses even to a violation", chickenTikka, "", WinnerA, schemas.ConfidenceHigh, "B is not a parseable recipe"},
		{"identical recipes tie", palakPaneer, palakPaneer, WinnerTie, schemas.ConfidenceLow, "they score alike"},
		{"both unparseable tie", prose, "", WinnerTie, schemas.ConfidenceLow, "they score alike"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := j.Judge(ctx, Request{Persona: p, Case: c, RecipeA: tt.a, RecipeB: tt.b})
			if err != nil {
				t.Fatal(err)
			}
			if v.Winner != tt.wantWinner || v.Confidence != tt.wantConfidence || v.Model != RulesModel {
				t.Errorf("got winner %q confidence %q model %q, want %q %q %q", v.Winner, v.Confidence, v.Model, tt.wantWinner, tt.wantConfidence, RulesModel)
			}
			if !strings.Contains(v.Reasoning, tt.wantReason) {
				t.Errorf("reasoning: got %q, want it to contain %q", v.Reasoning, tt.wantReason)
			}
			// Deterministic, and symmetric: swapping A and B mirrors the verdict.
			again, _ := j.Judge(ctx, Request{Persona: p, Case: c, RecipeA: tt.a, RecipeB: tt.b})
			if again != v {
				t.Errorf("second run: got %+v, want %+v", again, v)
			}
			sw, _ := j.Judge(ctx, Request{Persona: p, Case: c, RecipeA: tt.b, RecipeB: tt.a})
			mirror := map[string]string{WinnerA: WinnerB, WinnerB: WinnerA, WinnerTie: WinnerTie}
			if sw.Winner != mirror[v.Winner] || sw.ScoresA != v.ScoresB || sw.ScoresB != v.ScoresA || sw.Confidence != v.Confidence {
				t.Errorf("swapped: got %+v, want the mirror of %+v", sw, v)
			}
		})
	}
}

// TestRulesJudgeMargins checks confidence by total margin between two clean recipes.
func TestRulesJudgeMargins(t *testing.T) {
	p, c := fixture(t)
	// The same dish written sparsely loses on structure only: 5 quality points and what
	// they drag into overall suitability.
	sparse := `{"title": "Palak Paneer", "ingredients": [{"name": "paneer"}, {"name": "spinach"}, {"name": "garam masala"}, {"name": "cumin seeds"}, {"name": "turmeric"}, {"name": "ghee"}, {"name": "green chili"}, {"name": "garlic"}], "steps": ["Cook everything."]}`
	v, err := NewRulesJudge(nil).Judge(context.Background(), Request{Persona: p, Case: c, RecipeA: palakPaneer, RecipeB: sparse})
	if err != nil {
		t.Fatal(err)
	}
	d := Total(v.ScoresA) - Total(v.ScoresB)
	want := schemas.ConfidenceLow
	switch {
	case d >= HighMargin:
		want = schemas.ConfidenceHigh
	case d >= MediumMargin:
		want = schemas.ConfidenceMedium
	}
	if v.Winner != WinnerA || v.Confidence != want || d <= TieEpsilon {
		t.Errorf("got %s with %s confidence (margin %.2f), want A with %s", v.Winner, v.Confidence, d, want)
	}
}

// TestRulesJudgeBothOrders: with the rules judge the orders always agree, and DPO keeping
// the constraints wins the constraint-stress case.
func TestRulesJudgeBothOrders(t *testing.T) {
	p, c := fixture(t)
	out, err := JudgeBothOrders(context.Background(), NewRulesJudge(nil), p, c, chickenTikka, palakPaneer)
	if err != nil {
		t.Fatal(err)
	}
	r := out.Result
	if r.Winner != schemas.WinnerDPO || r.Confidence != schemas.ConfidenceHigh || !r.OrderAgreement || r.JudgeModel != RulesModel || r.Error != "" {
		t.Errorf("got %+v, want DPO winning with high confidence, orders agreeing, judged by rules", r)
	}
	if r.SFTScores.ConstraintCompliance != 2 || r.DPOScores.ConstraintCompliance != 10 || r.PromptTokens != 0 {
		t.Errorf("got SFT %+v DPO %+v tokens %d, want compliance 2 vs 10 and no tokens", r.SFTScores, r.DPOScores, r.PromptTokens)
	}
}

package label

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// Recipes as a generator writes them (schemas.Recipe JSON), for the Indian vegetarian
// persona (vegetarian; meat and seafood forbidden) and the Korean persona (no constraints).
const (
	// palakPaneer keeps every constraint of the Indian vegetarian persona.
	palakPaneer = `{"title": "Palak Paneer", "cuisine": "Indian", "servings": 4,
 "ingredients": [{"name": "paneer", "quantity": "250 g"}, {"name": "spinach", "quantity": "400 g"},
  {"name": "garam masala", "quantity": "1 tsp"}, {"name": "cumin seeds", "quantity": "1 tsp"},
  {"name": "turmeric", "quantity": "1/2 tsp"}, {"name": "ghee", "quantity": "2 tbsp"},
  {"name": "green chili", "quantity": "2"}, {"name": "garlic", "quantity": "3 cloves"}],
 "steps": ["Blanch and puree the spinach.", "Temper cumin in ghee, add garlic and chili.", "Simmer the puree with spices, fold in paneer."],
 "dietary_tags": ["vegetarian"]}`
	// saagPaneer is palakPaneer under another (flavour-neutral) title: the rules score
	// both alike.
	saagPaneer = `{"title": "Saag Paneer", "cuisine": "Indian", "servings": 4,
 "ingredients": [{"name": "paneer", "quantity": "250 g"}, {"name": "spinach", "quantity": "400 g"},
  {"name": "garam masala", "quantity": "1 tsp"}, {"name": "cumin seeds", "quantity": "1 tsp"},
  {"name": "turmeric", "quantity": "1/2 tsp"}, {"name": "ghee", "quantity": "2 tbsp"},
  {"name": "green chili", "quantity": "2"}, {"name": "garlic", "quantity": "3 cloves"}],
 "steps": ["Wilt the spinach.", "Fry the spices in ghee.", "Add paneer and serve."],
 "dietary_tags": ["vegetarian", "gluten-free"]}`
	// chickenTikka breaks the vegetarian restriction and the "meat" forbidden entry.
	chickenTikka = `{"title": "Chicken Tikka", "cuisine": "Indian", "servings": 2,
 "ingredients": [{"name": "chicken breast", "quantity": "500 g"}, {"name": "yogurt", "quantity": "150 g"},
  {"name": "garam masala", "quantity": "2 tsp"}],
 "steps": ["Marinate the chicken in yogurt and spices.", "Grill until charred."],
 "dietary_tags": []}`
	// salmonCurry breaks the vegetarian restriction and the "seafood" forbidden entry.
	salmonCurry = `{"title": "Kerala Salmon Curry", "cuisine": "Indian", "servings": 2,
 "ingredients": [{"name": "salmon fillet", "quantity": "400 g"}, {"name": "coconut milk", "quantity": "400 ml"},
  {"name": "turmeric", "quantity": "1 tsp"}],
 "steps": ["Simmer coconut milk with turmeric.", "Poach the salmon in the sauce."],
 "dietary_tags": ["gluten-free"]}`
	// kimchiStew is on-profile for the Korean persona.
	kimchiStew = "Here is your recipe:\n```json\n" + `{"title": "Spicy Kimchi Stew", "cuisine": "Korean", "servings": 2,
 "ingredients": [{"name": "kimchi", "quantity": "2 cups"}, {"name": "gochujang", "quantity": "1 tbsp"},
  {"name": "pork belly", "quantity": "200 g"}, {"name": "firm tofu", "quantity": "200 g"},
  {"name": "garlic", "quantity": "2 cloves"}, {"name": "scallions", "quantity": "2"}],
 "steps": ["Fry pork belly and kimchi.", "Add water and gochujang, simmer.", "Add tofu and scallions."],
 "dietary_tags": []}` + "\n```"
	// mushroomRisotto breaks nothing for the Korean persona but fits it poorly.
	mushroomRisotto = `{"title": "Mushroom Risotto", "cuisine": "Italian", "servings": 2,
 "ingredients": [{"name": "arborio rice", "quantity": "200 g"}, {"name": "cremini mushrooms", "quantity": "250 g"},
  {"name": "parmesan", "quantity": "50 g"}, {"name": "butter", "quantity": "30 g"}],
 "steps": ["Toast the rice.", "Add stock ladle by ladle.", "Finish with butter and parmesan."],
 "dietary_tags": ["vegetarian"]}`

	prose     = "Sure! Start by heating oil in a pan, then add the onions and cook until golden."
	truncated = `{"title": "Dal Tadka", "cuisine": "Indian", "servings": 4, "ingredients": [{"name": "red lentils", "quant`
)

const (
	indianVeg   = "persona_b_indian_veg"
	koreanSpicy = "persona_a_korean_spicy"
	promptID    = "p-0007"
	request     = "Create a recipe using spinach, paneer and garlic."
	judgeModel  = "llama-3.3-70b-versatile"
)

// Violations of chickenTikka for the Indian vegetarian persona, as PreferencePair stores them.
var chickenViolations = []string{"vegetarian: chicken breast (meat)", "forbidden: chicken breast (meat)"}

// Distinct LLM scores for A and B, so that a swapped mapping shows.
var (
	llmScoresA = schemas.CriterionScores{DietaryCompliance: 3, ForbiddenAvoided: 2, CuisineAlignment: 8, PersonaMatch: 7}
	llmScoresB = schemas.CriterionScores{DietaryCompliance: 10, ForbiddenAvoided: 10, CuisineAlignment: 6, PersonaMatch: 5.5}
)

// fakeJudge is an llm.PairJudge that answers with a scripted verdict or error and records
// every request. Like the real judge it fails when ctx has ended; cancel, when set, is
// called during the call to end ctx while the judge is answering.
type fakeJudge struct {
	verdict llm.PairVerdict
	err     error
	cancel  context.CancelFunc
	calls   []llm.PairRequest
}

func (f *fakeJudge) JudgePair(ctx context.Context, req llm.PairRequest) (llm.PairVerdict, error) {
	f.calls = append(f.calls, req)
	if err := ctx.Err(); err != nil {
		return llm.PairVerdict{}, fmt.Errorf("judge pair for %s: %w", req.Persona.ID, err)
	}
	if f.cancel != nil {
		f.cancel()
	}
	return f.verdict, f.err
}

// llmVerdict is an LLM judge's verdict with usage, using llmScoresA and llmScoresB.
func llmVerdict(winner string) llm.PairVerdict {
	return llm.PairVerdict{
		Winner: winner, ScoresA: llmScoresA, ScoresB: llmScoresB, Confidence: llm.ConfidenceMedium,
		Reasoning: "verdict " + winner + " from the fake judge", Model: judgeModel,
		PromptTokens: 812, CompletionTokens: 143, CacheKey: "k-123", CacheHit: true,
	}
}

func persona(t *testing.T, id string) schemas.Persona {
	t.Helper()
	p, err := schemas.DefaultPersona(id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func variant(personaID, v, text string) schemas.Variant {
	return schemas.Variant{PromptID: promptID, PersonaID: personaID, Variant: v, User: request, Text: text,
		Model: "sft", ParsedOK: true}
}

// rulesScores is the rules judge's scores of a recipe text for a persona.
func rulesScores(t *testing.T, text string, p schemas.Persona) schemas.CriterionScores {
	t.Helper()
	r, err := schemas.ParseRecipe(text)
	if err != nil {
		t.Fatalf("test recipe does not parse: %v", err)
	}
	return rules.New().Score(r, p)
}

// wantPair is what a labelled pair must hold; Chosen and Rejected are the variants' texts.
type wantPair struct {
	chosenVariant, judgeWinner, judgeModel, rulesVerdict, agreement string
	chosen, rejected                                                string
	chosenScores, rejectedScores                                    schemas.CriterionScores
	confidence, reasoning                                           string
	chosenViolations, rejectedViolations                            []string
	vetoed                                                          bool
}

// checkPair checks a Result holding a pair against want and the identity fields of a.
func checkPair(t *testing.T, res Result, a schemas.Variant, want wantPair) {
	t.Helper()
	if res.Dead != nil {
		t.Fatalf("got dead letter %q (%s), want a pair", res.Dead.Reason, res.Dead.Detail)
	}
	p := res.Pair
	if p == nil {
		t.Fatal("got no pair and no dead letter, want a pair")
	}
	if err := p.Validate(); err != nil {
		t.Errorf("pair.Validate() = %v, want nil", err)
	}
	for _, f := range []struct{ name, got, want string }{
		{"PairID", p.PairID, a.PromptID},
		{"PromptID", p.PromptID, a.PromptID},
		{"PersonaID", p.PersonaID, a.PersonaID},
		{"Prompt", p.Prompt, a.User},
		{"ChosenVariant", p.ChosenVariant, want.chosenVariant},
		{"JudgeWinner", p.JudgeWinner, want.judgeWinner},
		{"JudgeModel", p.JudgeModel, want.judgeModel},
		{"RulesVerdict", p.RulesVerdict, want.rulesVerdict},
		{"Agreement", p.Agreement, want.agreement},
		{"Confidence", p.Confidence, want.confidence},
		{"Reasoning", p.Reasoning, want.reasoning},
		{"Chosen", p.Chosen, want.chosen},
		{"Rejected", p.Rejected, want.rejected},
	} {
		if f.got != f.want {
			t.Errorf("pair.%s: got %q, want %q", f.name, f.got, f.want)
		}
	}
	if p.ChosenScores != want.chosenScores {
		t.Errorf("pair.ChosenScores: got %+v, want %+v", p.ChosenScores, want.chosenScores)
	}
	if p.RejectedScores != want.rejectedScores {
		t.Errorf("pair.RejectedScores: got %+v, want %+v", p.RejectedScores, want.rejectedScores)
	}
	if !slices.Equal(p.ChosenViolations, want.chosenViolations) {
		t.Errorf("pair.ChosenViolations: got %q, want %q", p.ChosenViolations, want.chosenViolations)
	}
	if !slices.Equal(p.RejectedViolations, want.rejectedViolations) {
		t.Errorf("pair.RejectedViolations: got %q, want %q", p.RejectedViolations, want.rejectedViolations)
	}
	if p.Vetoed != want.vetoed {
		t.Errorf("pair.Vetoed: got %v, want %v", p.Vetoed, want.vetoed)
	}
}

// checkDead checks a Result holding a dead letter of the given reason whose Detail holds
// every string of detail, with the label stage's identity fields and both variants in the
// payload.
func checkDead(t *testing.T, res Result, a, b schemas.Variant, reason string, detail ...string) {
	t.Helper()
	if res.Pair != nil {
		t.Fatalf("got pair (chosen %s), want dead letter %q", res.Pair.ChosenVariant, reason)
	}
	d := res.Dead
	if d == nil {
		t.Fatalf("got no dead letter, want %q", reason)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("dead.Validate() = %v, want nil", err)
	}
	for _, f := range []struct{ name, got, want string }{
		{"Reason", d.Reason, reason},
		{"Stage", d.Stage, schemas.StageLabel},
		{"PersonaID", d.PersonaID, a.PersonaID},
		{"RecordID", d.RecordID, a.PromptID},
	} {
		if f.got != f.want {
			t.Errorf("dead.%s: got %q, want %q", f.name, f.got, f.want)
		}
	}
	for _, s := range detail {
		if !strings.Contains(d.Detail, s) {
			t.Errorf("dead.Detail: got %q, want it to contain %q", d.Detail, s)
		}
	}
	var payload map[string]schemas.Variant
	if err := json.Unmarshal([]byte(d.Payload), &payload); err != nil {
		t.Fatalf("dead.Payload is not JSON {A, B}: %v (payload %q)", err, d.Payload)
	}
	if payload["A"].Text != a.Text || payload["B"].Text != b.Text {
		t.Errorf("dead.Payload: got A %q, B %q, want the variants' texts %q, %q",
			payload["A"].Text, payload["B"].Text, a.Text, b.Text)
	}
}

// checkUsage checks the judge usage a Result reports.
func checkUsage(t *testing.T, res Result, called bool, v llm.PairVerdict) {
	t.Helper()
	if res.Called != called {
		t.Errorf("Called: got %v, want %v", res.Called, called)
	}
	if res.PromptTokens != v.PromptTokens || res.CompletionTokens != v.CompletionTokens {
		t.Errorf("tokens: got %d prompt + %d completion, want %d + %d",
			res.PromptTokens, res.CompletionTokens, v.PromptTokens, v.CompletionTokens)
	}
	if res.JudgeModel != v.Model {
		t.Errorf("JudgeModel: got %q, want %q", res.JudgeModel, v.Model)
	}
	if res.CacheHit != v.CacheHit {
		t.Errorf("CacheHit: got %v, want %v", res.CacheHit, v.CacheHit)
	}
}

// checkCalls checks the fake was asked n times, each time with the persona and both
// variants exactly as given.
func checkCalls(t *testing.T, j *fakeJudge, n int, p schemas.Persona, a, b schemas.Variant) {
	t.Helper()
	if len(j.calls) != n {
		t.Fatalf("judge calls: got %d, want %d", len(j.calls), n)
	}
	for _, c := range j.calls {
		if c.Persona.ID != p.ID || c.Request != a.User || c.RecipeA != a.Text || c.RecipeB != b.Text {
			t.Errorf("judge request: got persona %q, request %q, A %.30q…, B %.30q…; want %q, %q, %.30q…, %.30q…",
				c.Persona.ID, c.Request, c.RecipeA, c.RecipeB, p.ID, a.User, a.Text, b.Text)
		}
	}
}

func TestLabelRulesOnly(t *testing.T) {
	veg, kor := persona(t, indianVeg), persona(t, koreanSpicy)
	tests := []struct {
		name          string
		p             schemas.Persona
		textA, textB  string
		wantVariant   string
		wantReasoning string
		wantViolChose []string
		wantViolRej   []string
	}{
		{
			name: "A complies, B breaks", p: veg, textA: palakPaneer, textB: chickenTikka, wantVariant: schemas.VariantA,
			wantReasoning: "B breaks " + strings.Join(chickenViolations, ", ") + "; A keeps every constraint",
			wantViolChose: []string{}, wantViolRej: chickenViolations,
		},
		{
			name: "B complies, A breaks", p: veg, textA: chickenTikka, textB: palakPaneer, wantVariant: schemas.VariantB,
			wantReasoning: "A breaks " + strings.Join(chickenViolations, ", ") + "; B keeps every constraint",
			wantViolChose: []string{}, wantViolRej: chickenViolations,
		},
		{
			name: "no constraints, A fits better", p: kor, textA: kimchiStew, textB: mushroomRisotto, wantVariant: schemas.VariantA,
			wantReasoning: "both keep every constraint; A fits the persona better",
			wantViolChose: []string{}, wantViolRej: []string{},
		},
		{
			name: "no constraints, B fits better", p: kor, textA: mushroomRisotto, textB: kimchiStew, wantVariant: schemas.VariantB,
			wantReasoning: "both keep every constraint; B fits the persona better",
			wantViolChose: []string{}, wantViolRej: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Labeler{Rules: rules.New(), Veto: VetoFlip}
			a, b := variant(tt.p.ID, schemas.VariantA, tt.textA), variant(tt.p.ID, schemas.VariantB, tt.textB)
			res, err := l.Label(context.Background(), tt.p, a, b)
			if err != nil {
				t.Fatalf("Label: got error %v, want nil", err)
			}
			chosen, rejected := a, b
			if tt.wantVariant == schemas.VariantB {
				chosen, rejected = b, a
			}
			cs, rs := rulesScores(t, chosen.Text, tt.p), rulesScores(t, rejected.Text, tt.p)
			reasoning := tt.wantReasoning
			if strings.HasSuffix(reasoning, "better") {
				sa, sb := cs, rs
				if tt.wantVariant == schemas.VariantB {
					sa, sb = rs, cs
				}
				reasoning += fmt.Sprintf(" (%.1f vs %.1f)", sa.Total(), sb.Total())
			}
			checkPair(t, res, a, wantPair{
				chosenVariant: tt.wantVariant, judgeWinner: tt.wantVariant, judgeModel: RulesModel,
				rulesVerdict: tt.wantVariant, agreement: schemas.AgreementNA,
				chosen: chosen.Text, rejected: rejected.Text, chosenScores: cs, rejectedScores: rs,
				confidence: llm.ConfidenceHigh, reasoning: reasoning,
				chosenViolations: tt.wantViolChose, rejectedViolations: tt.wantViolRej,
			})
			checkUsage(t, res, false, llm.PairVerdict{Model: RulesModel})
		})
	}
}

// TestLabelDeadBeforeJudge covers the failures the rules find before any LLM call: the
// judge is set, and must not be asked.
func TestLabelDeadBeforeJudge(t *testing.T) {
	veg := persona(t, indianVeg)
	tests := []struct {
		name         string
		judge        bool
		textA, textB string
		reason       string
		detail       []string
		notDetail    []string
	}{
		{
			name: "rules only, both comply and score alike", textA: palakPaneer, textB: saagPaneer,
			reason: schemas.ReasonTie, detail: []string{"rules saw no winner", "score alike"},
		},
		{
			name: "both violate, judge not called", judge: true, textA: chickenTikka, textB: salmonCurry,
			reason: schemas.ReasonBothViolate,
			detail: []string{"A: " + strings.Join(chickenViolations, ", "), "; B: vegetarian: salmon fillet (seafood)", "forbidden: salmon fillet (seafood)"},
		},
		{
			name: "A unparseable (prose)", judge: true, textA: prose, textB: palakPaneer,
			reason: schemas.ReasonUnparseable, detail: []string{"A: " + schemas.ErrNoRecipeJSON.Error()}, notDetail: []string{"B: "},
		},
		{
			name: "B unparseable (truncated JSON)", judge: true, textA: palakPaneer, textB: truncated,
			reason: schemas.ReasonUnparseable, detail: []string{"B: ", "unbalanced braces"}, notDetail: []string{"A: "},
		},
		{
			name: "both unparseable", judge: true, textA: truncated, textB: prose,
			reason: schemas.ReasonUnparseable, detail: []string{"A: ", "unbalanced braces", "; B: " + schemas.ErrNoRecipeJSON.Error()},
		},
		{
			name: "unparseable wins over both violating", judge: true, textA: chickenTikka, textB: `{"title": "Fish Fry", "ingredients": []}`,
			reason: schemas.ReasonUnparseable, detail: []string{"B: recipe: ingredients list is empty"}, notDetail: []string{"A: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &fakeJudge{verdict: llmVerdict(llm.WinnerA)}
			l := &Labeler{Rules: rules.New(), Veto: VetoFlip}
			if tt.judge {
				l.Judge = j
			}
			a, b := variant(veg.ID, schemas.VariantA, tt.textA), variant(veg.ID, schemas.VariantB, tt.textB)
			res, err := l.Label(context.Background(), veg, a, b)
			if err != nil {
				t.Fatalf("Label: got error %v, want nil", err)
			}
			checkDead(t, res, a, b, tt.reason, tt.detail...)
			for _, s := range tt.notDetail {
				if strings.Contains(res.Dead.Detail, s) {
					t.Errorf("dead.Detail: got %q, want no %q", res.Dead.Detail, s)
				}
			}
			checkCalls(t, j, 0, veg, a, b)
			if res.Called {
				t.Errorf("Called: got true, want false")
			}
		})
	}
}

// TestLabelLLM covers LLM verdicts and the rules veto.
func TestLabelLLM(t *testing.T) {
	veg, kor := persona(t, indianVeg), persona(t, koreanSpicy)
	type wantDead struct {
		reason string
		detail []string
	}
	tests := []struct {
		name         string
		p            schemas.Persona
		veto         string
		textA, textB string
		verdict      llm.PairVerdict
		// want names chosen and rejected "A" or "B" (resolved to the texts); judge model,
		// confidence and reasoning come from verdict.
		want *wantPair
		dead *wantDead
	}{
		{
			name: "LLM agrees with rules on A", p: veg, veto: VetoFlip, textA: palakPaneer, textB: chickenTikka,
			verdict: llmVerdict(llm.WinnerA),
			want: &wantPair{chosenVariant: "A", judgeWinner: "A", rulesVerdict: "A", agreement: schemas.AgreementAgree,
				chosen: "A", rejected: "B", chosenScores: llmScoresA, rejectedScores: llmScoresB,
				chosenViolations: []string{}, rejectedViolations: chickenViolations},
		},
		{
			name: "LLM agrees with rules on B", p: veg, veto: VetoFlip, textA: chickenTikka, textB: palakPaneer,
			verdict: llmVerdict(llm.WinnerB),
			want: &wantPair{chosenVariant: "B", judgeWinner: "B", rulesVerdict: "B", agreement: schemas.AgreementAgree,
				chosen: "B", rejected: "A", chosenScores: llmScoresB, rejectedScores: llmScoresA,
				chosenViolations: []string{}, rejectedViolations: chickenViolations},
		},
		{
			name: "veto flip: LLM prefers violating A", p: veg, veto: VetoFlip, textA: chickenTikka, textB: palakPaneer,
			verdict: llmVerdict(llm.WinnerA),
			want: &wantPair{chosenVariant: "B", judgeWinner: "A", rulesVerdict: "B", agreement: schemas.AgreementDisagree,
				chosen: "B", rejected: "A", chosenScores: llmScoresB, rejectedScores: llmScoresA,
				chosenViolations: []string{}, rejectedViolations: chickenViolations, vetoed: true},
		},
		{
			name: "veto flip: LLM prefers violating B", p: veg, veto: VetoFlip, textA: palakPaneer, textB: chickenTikka,
			verdict: llmVerdict(llm.WinnerB),
			want: &wantPair{chosenVariant: "A", judgeWinner: "B", rulesVerdict: "A", agreement: schemas.AgreementDisagree,
				chosen: "A", rejected: "B", chosenScores: llmScoresA, rejectedScores: llmScoresB,
				chosenViolations: []string{}, rejectedViolations: chickenViolations, vetoed: true},
		},
		{
			name: "veto drop: LLM prefers violating A", p: veg, veto: VetoDrop, textA: chickenTikka, textB: palakPaneer,
			verdict: llmVerdict(llm.WinnerA),
			dead:    &wantDead{schemas.ReasonVetoed, []string{judgeModel + " preferred A", "breaks " + strings.Join(chickenViolations, ", ")}},
		},
		{
			name: "veto off: LLM verdict kept", p: veg, veto: VetoOff, textA: chickenTikka, textB: palakPaneer,
			verdict: llmVerdict(llm.WinnerA),
			want: &wantPair{chosenVariant: "A", judgeWinner: "A", rulesVerdict: "B", agreement: schemas.AgreementDisagree,
				chosen: "A", rejected: "B", chosenScores: llmScoresA, rejectedScores: llmScoresB,
				chosenViolations: chickenViolations, rejectedViolations: []string{}},
		},
		{
			// Nothing breaks a constraint, so a disagreement on taste is no veto.
			name: "LLM disagrees on taste only: no veto", p: kor, veto: VetoFlip, textA: kimchiStew, textB: mushroomRisotto,
			verdict: llmVerdict(llm.WinnerB),
			want: &wantPair{chosenVariant: "B", judgeWinner: "B", rulesVerdict: "A", agreement: schemas.AgreementDisagree,
				chosen: "B", rejected: "A", chosenScores: llmScoresB, rejectedScores: llmScoresA,
				chosenViolations: []string{}, rejectedViolations: []string{}},
		},
		{
			name: "veto drop: taste disagreement kept", p: kor, veto: VetoDrop, textA: kimchiStew, textB: mushroomRisotto,
			verdict: llmVerdict(llm.WinnerB),
			want: &wantPair{chosenVariant: "B", judgeWinner: "B", rulesVerdict: "A", agreement: schemas.AgreementDisagree,
				chosen: "B", rejected: "A", chosenScores: llmScoresB, rejectedScores: llmScoresA,
				chosenViolations: []string{}, rejectedViolations: []string{}},
		},
		{
			name: "rules tie, LLM picks: agreement n/a", p: veg, veto: VetoFlip, textA: palakPaneer, textB: saagPaneer,
			verdict: llmVerdict(llm.WinnerB),
			want: &wantPair{chosenVariant: "B", judgeWinner: "B", rulesVerdict: schemas.RulesTie, agreement: schemas.AgreementNA,
				chosen: "B", rejected: "A", chosenScores: llmScoresB, rejectedScores: llmScoresA,
				chosenViolations: []string{}, rejectedViolations: []string{}},
		},
		{
			name: "LLM tie", p: veg, veto: VetoFlip, textA: palakPaneer, textB: chickenTikka,
			verdict: llmVerdict(llm.WinnerTie),
			dead:    &wantDead{schemas.ReasonTie, []string{judgeModel + " saw no winner", "verdict tie from the fake judge"}},
		},
		{
			name: "LLM scores out of range", p: veg, veto: VetoFlip, textA: palakPaneer, textB: chickenTikka,
			verdict: func() llm.PairVerdict {
				v := llmVerdict(llm.WinnerA)
				v.ScoresA.PersonaMatch = 11
				return v
			}(),
			dead: &wantDead{schemas.ReasonJudgeBadVerdict, []string{"chosen score persona_match = 11"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &fakeJudge{verdict: tt.verdict}
			l := &Labeler{Judge: j, Rules: rules.New(), Veto: tt.veto}
			a, b := variant(tt.p.ID, schemas.VariantA, tt.textA), variant(tt.p.ID, schemas.VariantB, tt.textB)
			res, err := l.Label(context.Background(), tt.p, a, b)
			if err != nil {
				t.Fatalf("Label: got error %v, want nil", err)
			}
			checkCalls(t, j, 1, tt.p, a, b)
			checkUsage(t, res, true, tt.verdict)
			if tt.dead != nil {
				checkDead(t, res, a, b, tt.dead.reason, tt.dead.detail...)
				return
			}
			text := map[string]string{"A": a.Text, "B": b.Text}
			w := *tt.want
			w.chosen, w.rejected, w.judgeModel = text[w.chosen], text[w.rejected], judgeModel
			w.confidence, w.reasoning = tt.verdict.Confidence, tt.verdict.Reasoning
			checkPair(t, res, a, w)
		})
	}
}

func TestLabelJudgeErrors(t *testing.T) {
	veg := persona(t, indianVeg)
	exhausted := fmt.Errorf("judge pair for %s: %w", veg.ID,
		fmt.Errorf("llm groq: giving up after 4 attempts (%s): %w", llm.ClassRateLimited,
			&llm.APIError{StatusCode: 429, Message: "Rate limit reached for tokens per minute"}))
	tests := []struct {
		name   string
		err    error
		reason string
		detail string // Detail must equal it
	}{
		{"429 retries exhausted", exhausted, schemas.ReasonJudgeFailed, llm.ClassRateLimited + ": " + exhausted.Error()},
		{"server error", &llm.APIError{StatusCode: 503}, schemas.ReasonJudgeFailed, llm.ClassServerError + ": HTTP 503 Service Unavailable"},
		{"auth", fmt.Errorf("judge: %w", &llm.APIError{StatusCode: 401, Message: "Invalid API Key"}), schemas.ReasonJudgeFailed,
			llm.ClassAuth + ": judge: HTTP 401 Unauthorized: Invalid API Key"},
		{"unclassified", errors.New("judge pair: both recipes must be non-empty"), schemas.ReasonJudgeFailed,
			llm.ClassUnknown + ": judge pair: both recipes must be non-empty"},
		{"bad verdict", fmt.Errorf("judge pair for %s: %w: missing winner", veg.ID, llm.ErrBadVerdict), schemas.ReasonJudgeBadVerdict,
			"judge pair for " + veg.ID + ": " + llm.ErrBadVerdict.Error() + ": missing winner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &fakeJudge{err: tt.err}
			l := &Labeler{Judge: j, Rules: rules.New(), Veto: VetoFlip}
			a, b := variant(veg.ID, schemas.VariantA, palakPaneer), variant(veg.ID, schemas.VariantB, chickenTikka)
			res, err := l.Label(context.Background(), veg, a, b)
			if err != nil {
				t.Fatalf("Label: got error %v, want nil (a dead letter)", err)
			}
			checkCalls(t, j, 1, veg, a, b)
			checkDead(t, res, a, b, tt.reason)
			if res.Dead.Detail != tt.detail {
				t.Errorf("dead.Detail: got %q, want %q", res.Dead.Detail, tt.detail)
			}
			if !res.Called {
				t.Errorf("Called: got false, want true")
			}
		})
	}
}

func TestLabelContextEnded(t *testing.T) {
	veg := persona(t, indianVeg)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), -1)
	defer cancel2()
	tests := []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		judge func(cancel context.CancelFunc) *fakeJudge
		want  error
	}{
		{
			name:  "canceled before the call",
			ctx:   func() (context.Context, context.CancelFunc) { return canceled, func() {} },
			judge: func(context.CancelFunc) *fakeJudge { return &fakeJudge{verdict: llmVerdict(llm.WinnerA)} },
			want:  context.Canceled,
		},
		{
			name:  "deadline passed",
			ctx:   func() (context.Context, context.CancelFunc) { return expired, func() {} },
			judge: func(context.CancelFunc) *fakeJudge { return &fakeJudge{verdict: llmVerdict(llm.WinnerA)} },
			want:  context.DeadlineExceeded,
		},
		{
			// The judge answered, but the run ended meanwhile: no row either way.
			name: "canceled while the judge answered",
			ctx:  func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			judge: func(cancel context.CancelFunc) *fakeJudge {
				return &fakeJudge{verdict: llmVerdict(llm.WinnerA), cancel: cancel}
			},
			want: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			j := tt.judge(cancel)
			l := &Labeler{Judge: j, Rules: rules.New(), Veto: VetoFlip}
			a, b := variant(veg.ID, schemas.VariantA, palakPaneer), variant(veg.ID, schemas.VariantB, chickenTikka)
			res, err := l.Label(ctx, veg, a, b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Label: got error %v, want %v", err, tt.want)
			}
			if res.Pair != nil || res.Dead != nil {
				t.Errorf("Label: got pair %v, dead letter %v, want neither", res.Pair, res.Dead)
			}
			checkCalls(t, j, 1, veg, a, b)
		})
	}
}

func TestValidateVeto(t *testing.T) {
	tests := []struct {
		veto    string
		wantErr bool
	}{
		{VetoFlip, false}, {VetoDrop, false}, {VetoOff, false},
		{"", true}, {"Flip", true}, {"keep", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.veto), func(t *testing.T) {
			err := ValidateVeto(tt.veto)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ValidateVeto(%q): got error %v, want error %v", tt.veto, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "--veto") {
				t.Errorf("ValidateVeto(%q): got %q, want it to name --veto", tt.veto, err)
			}
		})
	}
}

// TestLabelRulesRepeats: a recipe that lists the same ingredient again and again loses to a
// plainer one, although its criteria total is higher, and the reasoning says why.
func TestLabelRulesRepeats(t *testing.T) {
	kor := persona(t, koreanSpicy)
	repeating := `{"title": "Spicy Kimchi Stew", "cuisine": "Korean", "servings": 2,
 "ingredients": [{"name": "kimchi", "quantity": "2 cups"}, {"name": "gochujang", "quantity": "1 tbsp"},
  {"name": "pork belly", "quantity": "200 g"}, {"name": "Gochujang", "quantity": "1 tbsp"},
  {"name": "gochujang", "quantity": "1 tbsp"}, {"name": "gochujang", "quantity": "2 tbsp"}],
 "steps": ["Fry pork belly and kimchi.", "Add water and gochujang, simmer.", "Serve."],
 "dietary_tags": []}`
	plain := `{"title": "Kimchi Stew", "cuisine": "Korean", "servings": 2,
 "ingredients": [{"name": "kimchi", "quantity": "2 cups"}, {"name": "pork belly", "quantity": "200 g"},
  {"name": "zucchini", "quantity": "1"}, {"name": "onion", "quantity": "1"}],
 "steps": ["Fry pork belly and kimchi.", "Add water and zucchini, simmer.", "Serve."],
 "dietary_tags": []}`
	ra, rb := rulesScores(t, repeating, kor), rulesScores(t, plain, kor)
	if ra.Total() <= rb.Total() {
		t.Fatalf("fixture: the repeating recipe should score higher before the repeat penalty (%.1f vs %.1f)", ra.Total(), rb.Total())
	}
	l := &Labeler{Rules: rules.New(), Veto: VetoFlip}
	res, err := l.Label(context.Background(), kor, variant(kor.ID, schemas.VariantA, repeating), variant(kor.ID, schemas.VariantB, plain))
	if err != nil {
		t.Fatal(err)
	}
	if res.Pair == nil || res.Pair.ChosenVariant != schemas.VariantB {
		t.Fatalf("got %+v, want B chosen", res)
	}
	want := fmt.Sprintf("both keep every constraint; B fits the persona better (%.1f vs %.1f, repeated ingredients 3 vs 0)",
		ra.Total()-3*rules.RepeatPenalty, rb.Total())
	if res.Pair.Reasoning != want {
		t.Errorf("reasoning %q, want %q", res.Pair.Reasoning, want)
	}
}

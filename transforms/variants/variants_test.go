package variants

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

func persona(t *testing.T, id string) schemas.Persona {
	t.Helper()
	p, err := schemas.DefaultPersona(id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func prompt(id, personaID string) schemas.Prompt {
	return schemas.Prompt{PromptID: id, PersonaID: personaID,
		Request: "Create a recipe using spinach, chickpeas and rice.", Pantry: []string{"spinach", "chickpeas", "rice"}}
}

func TestRequests(t *testing.T) {
	spec := Spec{Model: "sft", MaxTokens: 768, Seed: 7, TempA: 0.7, TempB: 0.9, TopP: 0.95, PresencePenalty: 1.5, FrequencyPenalty: 0.2}
	for _, id := range []string{"persona_a_korean_spicy", "persona_b_indian_veg", "persona_e_mexican_vegan"} {
		t.Run(id, func(t *testing.T) {
			p := persona(t, id)
			pr := prompt(id+"-0003", id)
			reqs := Requests(spec, p, pr)
			if chatml.StrongSystem(p) == chatml.WeakSystem(p) {
				t.Fatal("StrongSystem and WeakSystem are equal; the test cannot tell A from B")
			}
			want := [2]struct {
				variant, system string
				temp            float64
			}{
				{schemas.VariantA, chatml.StrongSystem(p), spec.TempA},
				{schemas.VariantB, chatml.WeakSystem(p), spec.TempB},
			}
			for i, r := range reqs {
				w := want[i]
				if r.Variant != w.variant {
					t.Errorf("reqs[%d].Variant: got %q, want %q", i, r.Variant, w.variant)
				}
				if r.System != w.system {
					t.Errorf("reqs[%d] (%s).System: got %q, want %q", i, w.variant, r.System, w.system)
				}
				if r.Temperature != w.temp {
					t.Errorf("reqs[%d] (%s).Temperature: got %g, want %g", i, w.variant, r.Temperature, w.temp)
				}
				if r.User != pr.Request {
					t.Errorf("reqs[%d] (%s).User: got %q, want %q", i, w.variant, r.User, pr.Request)
				}
				if r.Model != spec.Model || r.MaxTokens != spec.MaxTokens || r.TopP != spec.TopP ||
					r.PresencePenalty != spec.PresencePenalty || r.FrequencyPenalty != spec.FrequencyPenalty {
					t.Errorf("reqs[%d] (%s): got model %q, max_tokens %d, top_p %g, penalties %g/%g; want %q, %d, %g, %g/%g",
						i, w.variant, r.Model, r.MaxTokens, r.TopP, r.PresencePenalty, r.FrequencyPenalty,
						spec.Model, spec.MaxTokens, spec.TopP, spec.PresencePenalty, spec.FrequencyPenalty)
				}
				if ws := DeriveSeed(spec.Seed, pr.PromptID, w.variant); r.Seed != ws {
					t.Errorf("reqs[%d] (%s).Seed: got %d, want DeriveSeed(%d, %q, %q) = %d",
						i, w.variant, r.Seed, spec.Seed, pr.PromptID, w.variant, ws)
				}
			}
			if reqs[0].Seed == reqs[1].Seed {
				t.Errorf("A and B seeds: got both %d, want distinct", reqs[0].Seed)
			}
			if again := Requests(spec, p, pr); again != reqs {
				t.Errorf("Requests is not deterministic: got %+v then %+v", reqs, again)
			}
		})
	}
}

// TestRequestSeeds checks that seeds change with the run seed and the prompt id, and not
// with anything else.
func TestRequestSeeds(t *testing.T) {
	p := persona(t, "persona_b_indian_veg")
	base, pr := DefaultSpec(), prompt("persona_b_indian_veg-0001", "persona_b_indian_veg")
	seeds := func(s Spec, pr schemas.Prompt) [2]int64 {
		r := Requests(s, p, pr)
		return [2]int64{r[0].Seed, r[1].Seed}
	}
	want := seeds(base, pr)
	tests := []struct {
		name string
		spec func(Spec) Spec
		pr   func(schemas.Prompt) schemas.Prompt
		same bool
	}{
		{"identical inputs", func(s Spec) Spec { return s }, func(p schemas.Prompt) schemas.Prompt { return p }, true},
		{"other request text", func(s Spec) Spec { return s }, func(p schemas.Prompt) schemas.Prompt { p.Request = "Make soup."; return p }, true},
		{"other temperatures", func(s Spec) Spec { s.TempA, s.TempB = 0.1, 1.5; return s }, func(p schemas.Prompt) schemas.Prompt { return p }, true},
		{"other model", func(s Spec) Spec { s.Model = "base"; return s }, func(p schemas.Prompt) schemas.Prompt { return p }, true},
		{"other prompt id", func(s Spec) Spec { return s }, func(p schemas.Prompt) schemas.Prompt { p.PromptID += "x"; return p }, false},
		{"other run seed", func(s Spec) Spec { s.Seed++; return s }, func(p schemas.Prompt) schemas.Prompt { return p }, false},
		{"negative run seed", func(s Spec) Spec { s.Seed = -s.Seed; return s }, func(p schemas.Prompt) schemas.Prompt { return p }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := seeds(tt.spec(base), tt.pr(pr))
			for i, v := range []string{"A", "B"} {
				if same := got[i] == want[i]; same != tt.same {
					t.Errorf("%s seed: got %d, base %d; want equal %v", v, got[i], want[i], tt.same)
				}
			}
		})
	}
}

func TestDeriveSeed(t *testing.T) {
	tests := []struct {
		name   string
		x, y   func() int64
		differ bool
	}{
		{"same inputs", func() int64 { return DeriveSeed(42, "p1", "A") }, func() int64 { return DeriveSeed(42, "p1", "A") }, false},
		{"variant", func() int64 { return DeriveSeed(42, "p1", "A") }, func() int64 { return DeriveSeed(42, "p1", "B") }, true},
		{"prompt id", func() int64 { return DeriveSeed(42, "p1", "A") }, func() int64 { return DeriveSeed(42, "p2", "A") }, true},
		{"run seed", func() int64 { return DeriveSeed(42, "p1", "A") }, func() int64 { return DeriveSeed(43, "p1", "A") }, true},
		// Parts are separated, so moving a boundary changes the seed.
		{"part boundary", func() int64 { return DeriveSeed(42, "p1A", "") }, func() int64 { return DeriveSeed(42, "p1", "A") }, true},
		{"part order", func() int64 { return DeriveSeed(42, "A", "p1") }, func() int64 { return DeriveSeed(42, "p1", "A") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, y := tt.x(), tt.y()
			if differ := x != y; differ != tt.differ {
				t.Errorf("got seeds %d and %d, want them to differ: %v", x, y, tt.differ)
			}
		})
	}

	t.Run("31 bits", func(t *testing.T) {
		// Over many inputs some hash has its top bits set; the mask must clear them.
		for _, seed := range []int64{0, 1, 42, -1, math.MaxInt64, math.MinInt64} {
			for i := range 500 {
				for _, v := range []string{"A", "B"} {
					if s := DeriveSeed(seed, fmt.Sprintf("prompt-%04d", i), v); s < 0 || s > math.MaxInt32 {
						t.Fatalf("DeriveSeed(%d, prompt-%04d, %s): got %d, want within [0, %d]", seed, i, v, s, math.MaxInt32)
					}
				}
			}
		}
	})
}

const (
	recipeJSON = `{"title": "Chana Saag", "cuisine": "Indian", "servings": 4,
 "ingredients": [{"name": "chickpeas", "quantity": "400 g"}, {"name": "spinach", "quantity": "300 g"}, {"name": "cumin seeds", "quantity": "1 tsp"}],
 "steps": ["Temper the cumin.", "Add spinach and chickpeas; simmer."], "dietary_tags": ["vegetarian", "vegan"]}`
	fenced     = "Here you go:\n```json\n" + recipeJSON + "\n```\nEnjoy!"
	proseText  = "Heat oil in a pan, add the cumin seeds, then the spinach and chickpeas. Simmer ten minutes."
	truncJSON  = `{"title": "Chana Saag", "cuisine": "Indian", "servings": 4, "ingredients": [{"name": "chick`
	noSteps    = `{"title": "Chana Saag", "cuisine": "Indian", "servings": 4, "ingredients": [{"name": "chickpeas", "quantity": "1 can"}], "steps": []}`
	badServing = `{"title": "Chana Saag", "cuisine": "Indian", "servings": "four", "ingredients": [{"name": "chickpeas", "quantity": "1"}], "steps": ["Cook."]}`
)

func TestRow(t *testing.T) {
	p := persona(t, "persona_b_indian_veg")
	pr := prompt("persona_b_indian_veg-0009", p.ID)
	spec := DefaultSpec()
	reqs := Requests(spec, p, pr)
	tests := []struct {
		name      string
		req       Request
		resp      llm.GenerateResponse
		wantOK    bool
		wantErr   string // a substring of ParseError; "" when ParsedOK
		wantModel string
	}{
		{"valid JSON", reqs[0], llm.GenerateResponse{Text: recipeJSON, Model: "sft-v2"}, true, "", "sft-v2"},
		{"JSON in prose and a fence", reqs[1], llm.GenerateResponse{Text: fenced, Model: "sft-v2"}, true, "", "sft-v2"},
		{"prose", reqs[0], llm.GenerateResponse{Text: proseText, Model: "sft-v2"}, false, schemas.ErrNoRecipeJSON.Error(), "sft-v2"},
		{"truncated JSON", reqs[1], llm.GenerateResponse{Text: truncJSON, Model: "sft-v2"}, false, "unbalanced braces", "sft-v2"},
		{"empty text", reqs[0], llm.GenerateResponse{Model: "sft-v2"}, false, schemas.ErrNoRecipeJSON.Error(), "sft-v2"},
		{"no steps", reqs[0], llm.GenerateResponse{Text: noSteps, Model: "sft-v2"}, false, "steps list is empty", "sft-v2"},
		{"wrong field type", reqs[1], llm.GenerateResponse{Text: badServing, Model: "sft-v2"}, false, "recipe JSON", "sft-v2"},
		{"empty response model falls back to the request's", reqs[1], llm.GenerateResponse{Text: recipeJSON}, true, "", spec.Model},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.resp.PromptTokens, tt.resp.CompletionTokens, tt.resp.LatencyMS, tt.resp.CacheKey = 120, 340, 2100, "ck-9"
			v := Row(pr, tt.req, tt.resp)
			if v.ParsedOK != tt.wantOK {
				t.Errorf("ParsedOK: got %v, want %v (ParseError %q)", v.ParsedOK, tt.wantOK, v.ParseError)
			}
			switch {
			case tt.wantOK && v.ParseError != "":
				t.Errorf("ParseError: got %q, want empty", v.ParseError)
			case !tt.wantOK && !strings.Contains(v.ParseError, tt.wantErr):
				t.Errorf("ParseError: got %q, want it to contain %q", v.ParseError, tt.wantErr)
			}
			for _, f := range []struct{ name, got, want string }{
				{"Model", v.Model, tt.wantModel},
				{"PromptID", v.PromptID, pr.PromptID},
				{"PersonaID", v.PersonaID, pr.PersonaID},
				{"Variant", v.Variant, tt.req.Variant},
				{"System", v.System, tt.req.System},
				{"User", v.User, tt.req.User},
				{"Text", v.Text, tt.resp.Text},
				{"CacheKey", v.CacheKey, tt.resp.CacheKey},
			} {
				if f.got != f.want {
					t.Errorf("%s: got %q, want %q", f.name, f.got, f.want)
				}
			}
			if v.Temperature != tt.req.Temperature {
				t.Errorf("Temperature: got %g, want %g", v.Temperature, tt.req.Temperature)
			}
			if v.PromptTokens != 120 || v.CompletionTokens != 340 || v.LatencyMS != 2100 {
				t.Errorf("usage: got %d/%d tokens, %d ms; want 120/340, 2100 ms", v.PromptTokens, v.CompletionTokens, v.LatencyMS)
			}
			if err := v.Validate(); err != nil {
				t.Errorf("Validate: got %v, want nil", err)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*Spec)
		wantFlag string // "" for a valid spec
	}{
		{"default", func(*Spec) {}, ""},
		{"greedy A, hot B, full top_p", func(s *Spec) { s.TempA, s.TempB, s.TopP = 0, 2, 1 }, ""},
		{"small top_p", func(s *Spec) { s.TopP = 0.01 }, ""},
		{"any run seed", func(s *Spec) { s.Seed = -5 }, ""},
		{"empty model", func(s *Spec) { s.Model = "" }, "--generator_model"},
		{"zero max tokens", func(s *Spec) { s.MaxTokens = 0 }, "--max_tokens"},
		{"negative max tokens", func(s *Spec) { s.MaxTokens = -1 }, "--max_tokens"},
		{"negative temperature A", func(s *Spec) { s.TempA = -0.1 }, "--temperature_a"},
		{"temperature A above 2", func(s *Spec) { s.TempA = 2.01 }, "--temperature_a"},
		{"negative temperature B", func(s *Spec) { s.TempB = -1 }, "--temperature_b"},
		{"temperature B above 2", func(s *Spec) { s.TempB = 3 }, "--temperature_b"},
		{"NaN temperature A", func(s *Spec) { s.TempA = math.NaN() }, "--temperature_a"},
		{"NaN temperature B", func(s *Spec) { s.TempB = math.NaN() }, "--temperature_b"},
		{"zero top_p", func(s *Spec) { s.TopP = 0 }, "--top_p"},
		{"top_p above 1", func(s *Spec) { s.TopP = 1.5 }, "--top_p"},
		{"NaN top_p", func(s *Spec) { s.TopP = math.NaN() }, "--top_p"},
		{"penalties at the range ends", func(s *Spec) { s.PresencePenalty, s.FrequencyPenalty = 2, -2 }, ""},
		{"presence penalty above 2", func(s *Spec) { s.PresencePenalty = 2.1 }, "--presence_penalty"},
		{"NaN frequency penalty", func(s *Spec) { s.FrequencyPenalty = math.NaN() }, "--frequency_penalty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultSpec()
			tt.mod(&s)
			err := s.Validate()
			switch {
			case tt.wantFlag == "" && err != nil:
				t.Errorf("Validate(%+v): got %v, want nil", s, err)
			case tt.wantFlag != "" && err == nil:
				t.Errorf("Validate(%+v): got nil, want an error naming %s", s, tt.wantFlag)
			case tt.wantFlag != "" && !strings.Contains(err.Error(), tt.wantFlag):
				t.Errorf("Validate(%+v): got %q, want it to name %s", s, err, tt.wantFlag)
			}
		})
	}
}

func TestDefaultSpec(t *testing.T) {
	s := DefaultSpec()
	// PIPELINE.md §3.1: A at 0.7, B at 0.9.
	if s.TempA != 0.7 || s.TempB != 0.9 {
		t.Errorf("DefaultSpec temperatures: got A %g, B %g, want 0.7, 0.9", s.TempA, s.TempB)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("DefaultSpec().Validate(): got %v, want nil", err)
	}
}

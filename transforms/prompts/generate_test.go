package prompts

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// personas returns the embedded personas.
func personas(t *testing.T) []schemas.Persona {
	t.Helper()
	ps, err := schemas.DefaultPersonas()
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestGenerateDeterministic(t *testing.T) {
	for _, p := range personas(t) {
		t.Run(p.ID, func(t *testing.T) {
			a, b := Generate(p, 50, 7), Generate(p, 50, 7)
			if !slices.EqualFunc(a, b, equalPrompt) {
				t.Fatalf("same seed: got different prompts, want identical")
			}
			c := Generate(p, 50, 8)
			same := 0
			for i := range a {
				if equalPrompt(a[i], c[i]) {
					same++
				}
			}
			if same > 5 {
				t.Errorf("seed 7 vs 8: got %d of 50 identical prompts, want at most 5", same)
			}
			// Prompt i does not depend on n.
			if prefix := Generate(p, 20, 7); !slices.EqualFunc(prefix, a[:20], equalPrompt) {
				t.Errorf("Generate(p, 20, 7) is not a prefix of Generate(p, 50, 7)")
			}
		})
	}
}

func equalPrompt(a, b schemas.Prompt) bool {
	return a.PromptID == b.PromptID && a.PersonaID == b.PersonaID && a.Request == b.Request &&
		a.IncludesForbidden == b.IncludesForbidden && slices.Equal(a.Pantry, b.Pantry)
}

func TestGenerateShape(t *testing.T) {
	idPattern := regexp.MustCompile(`^persona_[a-z_]+-\d{5}$`)
	for _, n := range []int{0, 1, 37} {
		for _, p := range personas(t) {
			t.Run(fmt.Sprintf("%s/n=%d", p.ID, n), func(t *testing.T) {
				ps := Generate(p, n, 1)
				if len(ps) != n {
					t.Fatalf("got %d prompts, want %d", len(ps), n)
				}
				for i, pr := range ps {
					if want := fmt.Sprintf("%s-%05d", p.ID, i); pr.PromptID != want || !idPattern.MatchString(pr.PromptID) {
						t.Errorf("got prompt id %q, want %q", pr.PromptID, want)
					}
					if pr.PersonaID != p.ID {
						t.Errorf("got persona %q, want %q", pr.PersonaID, p.ID)
					}
					if err := pr.Validate(); err != nil {
						t.Errorf("got invalid prompt: %v", err)
					}
					if k := len(pr.Pantry); k < minPantry || k > maxPantry {
						t.Errorf("%s: got pantry of %d, want %d..%d", pr.PromptID, k, minPantry, maxPantry)
					}
					seen := map[string]bool{}
					for _, it := range pr.Pantry {
						if seen[rules.Normalize(it)] {
							t.Errorf("%s: got %q twice in %v, want distinct items", pr.PromptID, it, pr.Pantry)
						}
						seen[rules.Normalize(it)] = true
						if !strings.Contains(pr.Request, it) {
							t.Errorf("%s: request %q does not list pantry item %q", pr.PromptID, pr.Request, it)
						}
					}
				}
			})
		}
	}
}

func TestGenerateForbiddenShare(t *testing.T) {
	const n = 500
	eng := rules.New()
	for _, p := range personas(t) {
		t.Run(p.ID, func(t *testing.T) {
			ps := Generate(p, n, 42)
			forbidden := 0
			for _, pr := range ps {
				bad := eng.CheckIngredients(pr.Pantry, p)
				if pr.IncludesForbidden {
					forbidden++
					offending := map[string]bool{}
					for _, v := range bad {
						offending[v.Ingredient] = true
					}
					if len(offending) < 1 || len(offending) > 2 {
						t.Errorf("%s: got %d offending items %v, want 1 or 2", pr.PromptID, len(offending), rules.Strings(bad))
					}
				} else if len(bad) > 0 {
					t.Errorf("%s: pantry %v without IncludesForbidden: got violations %v, want none", pr.PromptID, pr.Pantry, rules.Strings(bad))
				}
			}
			want := 0.0
			if p.Restricted() {
				want = DefaultForbiddenShare
			}
			if got := float64(forbidden) / n; math.Abs(got-want) > 1.0/n {
				t.Errorf("got forbidden share %.3f, want %.3f", got, want)
			}
			// Every prefix holds the share to within one prompt.
			count := 0
			for i, pr := range ps {
				if pr.IncludesForbidden {
					count++
				}
				if math.Abs(float64(count)-want*float64(i+1)) > 1 {
					t.Fatalf("after %d prompts: got %d forbidden, want %.1f ± 1", i+1, count, want*float64(i+1))
				}
			}
		})
	}
}

func TestGenerateCustomShare(t *testing.T) {
	p, _ := schemas.PersonaByID(personas(t), "persona_e_mexican_vegan")
	tests := []struct {
		share float64
		want  int
	}{{0, 0}, {0.5, 50}, {1, 100}, {-1, 0}, {2, 100}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.share), func(t *testing.T) {
			g := NewGenerator()
			g.ForbiddenShare = tt.share
			got := 0
			for _, pr := range g.Generate(p, 100, 3) {
				if pr.IncludesForbidden {
					got++
				}
			}
			if math.Abs(float64(got-tt.want)) > 1 {
				t.Errorf("got %d forbidden prompts of 100, want %d", got, tt.want)
			}
		})
	}
}

func TestGenerateMostlyFromCuisine(t *testing.T) {
	lex := DefaultLexicon()
	for _, p := range personas(t) {
		t.Run(p.ID, func(t *testing.T) {
			primary := map[string]bool{}
			for _, it := range append(slices.Clone(p.PreferredIngredients), lex.Cuisines[strings.ToLower(p.Cuisines[0])]...) {
				primary[rules.Normalize(it)] = true
			}
			in, total := 0, 0
			for _, pr := range Generate(p, 300, 9) {
				for _, it := range pr.Pantry {
					total++
					if primary[rules.Normalize(it)] {
						in++
					}
				}
			}
			if share := float64(in) / float64(total); share < 0.6 {
				t.Errorf("got %.2f of pantry items from the first cuisine and preferred ingredients, want >= 0.6", share)
			}
		})
	}
}

func TestRequestsAreNeutral(t *testing.T) {
	banned := regexp.MustCompile(`(?i)\b(vegetarian|vegan|gluten|keto|ketogenic|sodium|low-carb|carbs?|dairy-free|plant-based|meatless|sugar-free|diet)\b`)
	for _, p := range personas(t) {
		t.Run(p.ID, func(t *testing.T) {
			for _, pr := range Generate(p, 300, 11) {
				if m := banned.FindString(pr.Request); m != "" {
					t.Errorf("%s: request %q mentions %q, want a persona-neutral request", pr.PromptID, pr.Request, m)
				}
			}
		})
	}
}

func TestRequestArticle(t *testing.T) {
	g := NewGenerator()
	g.Lexicon.Templates = []string{"Create a {cuisine} dinner using {items}."}
	tests := []struct{ cuisine, want string }{
		{"Indian", "Create an Indian dinner using "},
		{"Italian", "Create an Italian dinner using "},
		{"Korean", "Create a Korean dinner using "},
	}
	for _, tt := range tests {
		t.Run(tt.cuisine, func(t *testing.T) {
			p := schemas.Persona{ID: "p", Cuisines: []string{tt.cuisine}, DietaryRestrictions: []string{"none"}}
			if got := g.Generate(p, 1, 1)[0].Request; !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q, want prefix %q", got, tt.want)
			}
		})
	}
}

func TestIsNeutral(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"Create a recipe using tofu and rice.", true},
		{"gluten-free pasta", false},
		{"low-sodium soy sauce", false},
		{"Make it vegan", false},
		{"unsalted butter", false},
		{"keto bread", false},
		{"carbonara", true},
		{"salted butter", true},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := IsNeutral(tt.text); got != tt.want {
				t.Errorf("IsNeutral(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestJoinItems(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, "whatever I have"},
		{[]string{"tofu"}, "tofu"},
		{[]string{"tofu", "rice"}, "tofu and rice"},
		{[]string{"tofu", "rice", "kimchi"}, "tofu, rice, and kimchi"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := joinItems(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLexicon(t *testing.T) {
	if err := DefaultLexicon().Validate(); err != nil {
		t.Fatalf("embedded lexicon: got %v, want valid", err)
	}
	// Every persona cuisine has a pantry, and every restricted persona's cuisine offers
	// forbidden items of its own (so forbidden prompts are realistic).
	for _, p := range personas(t) {
		t.Run(p.ID, func(t *testing.T) {
			for _, c := range p.Cuisines {
				if len(DefaultLexicon().Cuisines[strings.ToLower(c)]) == 0 {
					t.Errorf("cuisine %q: got no lexicon entry, want one", c)
				}
			}
			pools := NewGenerator().pools(p)
			if len(pools.primary) < maxPantry {
				t.Errorf("got %d allowed primary items, want at least %d", len(pools.primary), maxPantry)
			}
			if p.Restricted() && len(pools.forbidden) < 2 {
				t.Errorf("got forbidden candidates %v, want at least 2", pools.forbidden)
			}
		})
	}
	tests := []struct{ name, yaml, want string }{
		{"no items placeholder", "templates: [\"Cook {cuisine} food\"]\n", "has no {items}"},
		{"unknown placeholder", "templates: [\"Cook {items} for {persona}\"]\n", "unknown placeholder {persona}"},
		{"diet in template", "templates: [\"A vegan dish with {items}\"]\n", "mentions a diet"},
		{"diet in item", "templates: [\"{items}\"]\ncuisines:\n  italian: [gluten-free pasta]\n", `"gluten-free pasta" mentions a diet`},
		{"duplicate item", "templates: [\"{items}\"]\nstaples: [tomato, tomatoes]\n", `"tomatoes" is listed twice`},
		{"upper-case cuisine", "templates: [\"{items}\"]\ncuisines:\n  Thai: [basil]\n", `cuisine key "Thai" must be lower case`},
		{"unknown field", "templates: [\"{items}\"]\nextras: []\n", "field extras not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLexicon([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestGenerateUnknownCuisine(t *testing.T) {
	p := schemas.Persona{ID: "persona_g_thai", Cuisines: []string{"Thai"}, DietaryRestrictions: []string{"vegetarian"},
		PreferredIngredients: []string{"thai basil", "lemongrass", "tofu"}}
	ps := Generate(p, 40, 5)
	forbidden := 0
	for _, pr := range ps {
		if len(pr.Pantry) < minPantry {
			t.Errorf("%s: got pantry %v, want at least %d items", pr.PromptID, pr.Pantry, minPantry)
		}
		if pr.IncludesForbidden {
			forbidden++
		}
	}
	// Staples supply the forbidden items (chicken breast) when the cuisine has none.
	if forbidden != 12 {
		t.Errorf("got %d forbidden prompts of 40, want 12", forbidden)
	}
}

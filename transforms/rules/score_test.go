package rules

import (
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// recipe builds a recipe from a title, a cuisine and ingredient names.
func recipe(title, cuisine string, names ...string) schemas.Recipe {
	r := schemas.Recipe{Title: title, Cuisine: cuisine, Servings: 2, Steps: []string{"Cook."}}
	for _, n := range names {
		r.Ingredients = append(r.Ingredients, schemas.Ingredient{Name: n, Quantity: "1"})
	}
	return r
}

// defaultPersona returns one of the embedded personas.
func defaultPersona(t *testing.T, id string) schemas.Persona {
	t.Helper()
	ps, err := schemas.DefaultPersonas()
	if err != nil {
		t.Fatal(err)
	}
	p, ok := schemas.PersonaByID(ps, id)
	if !ok {
		t.Fatalf("persona %q not found", id)
	}
	return p
}

var (
	palakPaneer = recipe("Spicy Palak Paneer", "Indian",
		"paneer", "spinach", "garam masala", "cumin seeds", "turmeric", "ghee", "green chili", "garlic")
	chickenTikka = recipe("Chicken Tikka", "Indian", "chicken breast", "yogurt", "garam masala", "salt")
)

func TestScore(t *testing.T) {
	tests := []struct {
		name    string
		persona string
		recipe  schemas.Recipe
		want    schemas.CriterionScores
	}{
		{
			// Cuisine: label 5 + five Indian markers (capped at 5). Persona: six preferred
			// ingredients (saturated, 7) and all four flavour notes (3).
			name: "compliant and on-profile", persona: "persona_b_indian_veg", recipe: palakPaneer,
			want: schemas.CriterionScores{DietaryCompliance: 10, ForbiddenAvoided: 10, CuisineAlignment: 10, PersonaMatch: 10},
		},
		{
			// One restriction violation (−5) and one forbidden hit (−8). Cuisine: 5 + 1 marker.
			// Persona: yogurt and garam masala (2/4 of 7) + aromatic and creamy (2/4 of 3).
			name: "meat for a vegetarian", persona: "persona_b_indian_veg", recipe: chickenTikka,
			want: schemas.CriterionScores{DietaryCompliance: 5, ForbiddenAvoided: 2, CuisineAlignment: 6.25, PersonaMatch: 5},
		},
		{
			// Two carb lines: dietary 10−2×5, forbidden 10−2×8 floored at 0. Cuisine: 5 +
			// soy sauce, ginger, scallion (3 × 1.25). Persona: ginger, scallions (2/4 of 7) +
			// savory and aromatic (2/3 of 3).
			name: "carbs for keto", persona: "persona_f_chinese_keto",
			recipe: recipe("Fried Rice", "Chinese", "jasmine rice", "sugar", "soy sauce", "ginger", "scallions"),
			want:   schemas.CriterionScores{DietaryCompliance: 0, ForbiddenAvoided: 0, CuisineAlignment: 8.75, PersonaMatch: 5.5},
		},
		{
			// Secondary cuisine label (4), no markers; no preferred ingredient; the title
			// meets "spicy" (1/4 of 3).
			name: "secondary cuisine", persona: "persona_a_korean_spicy",
			recipe: recipe("Spicy Stir-Fried Vegetables", "Pan-Asian", "carrot", "zucchini"),
			want:   schemas.CriterionScores{DietaryCompliance: 10, ForbiddenAvoided: 10, CuisineAlignment: 4, PersonaMatch: 0.75},
		},
		{
			name: "wrong cuisine", persona: "persona_d_japanese_lowsodium",
			recipe: recipe("Tacos", "Mexican", "corn tortillas", "black beans"),
			want:   schemas.CriterionScores{DietaryCompliance: 10, ForbiddenAvoided: 10, CuisineAlignment: 0, PersonaMatch: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e().Score(tt.recipe, defaultPersona(t, tt.persona))
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("got invalid scores: %v", err)
			}
		})
	}
}

func TestScoreWithoutMarkersOrPreferences(t *testing.T) {
	p := schemas.Persona{ID: "p", Cuisines: []string{"Thai"}, DietaryRestrictions: []string{"none"}}
	got := e().Score(recipe("Pad Krapow", "Thai", "basil", "chili"), p)
	// No Thai markers: cuisine is twice the label. No preferences at all: a neutral 5.
	want := schemas.CriterionScores{DietaryCompliance: 10, ForbiddenAvoided: 10, CuisineAlignment: 10, PersonaMatch: 5}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name    string
		persona string
		a, b    schemas.Recipe
		want    string
		wantVA  int
		wantVB  int
	}{
		{"compliant beats violating", "persona_b_indian_veg", palakPaneer, chickenTikka, schemas.RulesPrefersA, 0, 2},
		{"order does not matter", "persona_b_indian_veg", chickenTikka, palakPaneer, schemas.RulesPrefersB, 2, 0},
		{
			// A scores far higher on the soft criteria, but B breaks no hard constraint.
			name: "violations dominate scores", persona: "persona_b_indian_veg",
			a:    recipe("Spicy Paneer with Prawns", "Indian", "paneer", "spinach", "garam masala", "ghee", "prawns"),
			b:    recipe("Plain Toast", "British", "bread"),
			want: schemas.RulesPrefersB, wantVA: 2, wantVB: 0,
		},
		{
			name: "equal violations fall back to totals", persona: "persona_b_indian_veg",
			a:    recipe("Spicy Paneer with Prawns", "Indian", "paneer", "spinach", "garam masala", "ghee", "prawns"),
			b:    recipe("Plain Toast", "British", "bread", "chicken"),
			want: schemas.RulesPrefersA, wantVA: 2, wantVB: 2,
		},
		{
			name: "fewer violations wins", persona: "persona_e_mexican_vegan",
			a:    recipe("Bean Tacos", "Mexican", "corn tortillas", "black beans", "queso fresco"),
			b:    recipe("Beef Tacos", "Mexican", "corn tortillas", "ground beef", "queso fresco"),
			want: schemas.RulesPrefersA, wantVA: 2, wantVB: 4,
		},
		{"identical recipes tie", "persona_b_indian_veg", palakPaneer, palakPaneer, schemas.RulesTie, 0, 0},
		{
			// No violations either side: the Korean recipe's label and markers win.
			name: "higher total wins", persona: "persona_a_korean_spicy",
			a:    recipe("Kimchi Jjigae", "Korean", "kimchi", "gochugaru", "pork belly", "firm tofu"),
			b:    recipe("Pasta", "Italian", "spaghetti", "tomato"),
			want: schemas.RulesPrefersA,
		},
		{
			// A uses more of the persona's ingredients, but lists gochugaru three times: two
			// repeated lines cost 2×RepeatPenalty, more than its soft-criteria lead.
			name: "repeated ingredients lose", persona: "persona_a_korean_spicy",
			a:    recipe("Spicy Tofu Stew", "Korean", "gochugaru", "firm tofu", "Gochugaru", "gochugaru,"),
			b:    recipe("Tofu Stew", "Korean", "firm tofu", "gochugaru", "zucchini"),
			want: schemas.RulesPrefersB,
		},
		{
			// Equal totals from different ingredients: within TieEpsilon.
			name: "equal totals tie", persona: "persona_a_korean_spicy",
			a:    recipe("Stew", "Korean", "gochujang"),
			b:    recipe("Soup", "Korean", "doenjang"),
			want: schemas.RulesTie,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := defaultPersona(t, tt.persona)
			winner, sa, sb, va, vb := e().Compare(tt.a, tt.b, p)
			if winner != tt.want {
				t.Errorf("got winner %q (totals %.2f vs %.2f), want %q", winner, sa.Total(), sb.Total(), tt.want)
			}
			if len(va) != tt.wantVA || len(vb) != tt.wantVB {
				t.Errorf("got %d and %d violations (%v / %v), want %d and %d", len(va), len(vb), Strings(va), Strings(vb), tt.wantVA, tt.wantVB)
			}
			if sa != e().Score(tt.a, p) || sb != e().Score(tt.b, p) {
				t.Errorf("got Compare scores %+v / %+v, want Score's", sa, sb)
			}
		})
	}
}

func TestCompareDeterministic(t *testing.T) {
	p := defaultPersona(t, "persona_c_italian_gf")
	a := recipe("Risotto", "Italian", "arborio rice", "parmesan", "vegetable stock", "tamari")
	b := recipe("Pasta al Pomodoro", "Italian", "spaghetti", "tomatoes", "fresh basil")
	w0, sa0, sb0, va0, vb0 := e().Compare(a, b, p)
	for i := range 20 {
		w, sa, sb, va, vb := e().Compare(a, b, p)
		if w != w0 || sa != sa0 || sb != sb0 || len(va) != len(va0) || len(vb) != len(vb0) {
			t.Fatalf("run %d: got %s %+v %+v %v %v, want %s %+v %+v %v %v", i, w, sa, sb, va, vb, w0, sa0, sb0, va0, vb0)
		}
	}
}

func TestRepeats(t *testing.T) {
	for _, tt := range []struct {
		r    schemas.Recipe
		want int
	}{
		{recipe("x", "y"), 0},
		{recipe("x", "y", "garlic", "ginger"), 0},
		{recipe("x", "y", "garlic", "Garlic", "ginger", "garlic,"), 2},
		{recipe("x", "y", "gochugaru", "gochugaru", "gochugaru", "gochugaru", "gochugaru"), 4},
	} {
		if got := Repeats(tt.r); got != tt.want {
			t.Errorf("Repeats(%v) = %d, want %d", tt.r.IngredientNames(), got, tt.want)
		}
		s := schemas.CriterionScores{DietaryCompliance: 10, ForbiddenAvoided: 10, CuisineAlignment: 5, PersonaMatch: 5}
		if got, want := Standing(s, tt.r), 30-RepeatPenalty*float64(tt.want); got != want {
			t.Errorf("Standing = %g, want %g", got, want)
		}
	}
}

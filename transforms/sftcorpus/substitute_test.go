package sftcorpus

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/prompts"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// Every ingredient of the lexicon (any cuisine, staples included) that a persona must not
// eat gets a substitute the rules engine accepts for that persona, so a compliant recipe
// never has to leave an item out silently.
func TestSubstitutesComply(t *testing.T) {
	eng := rules.New()
	lex := prompts.DefaultLexicon()
	items := slices.Clone(lex.Staples)
	for _, c := range slices.Sorted(maps.Keys(lex.Cuisines)) {
		items = append(items, lex.Cuisines[c]...)
	}
	for _, p := range personas(t) {
		t.Run(p.ID, func(t *testing.T) {
			checked := 0
			for _, it := range items {
				if !eng.Violates(it, p) {
					continue
				}
				checked++
				sub := Substitute(eng, it, p, []string{it})
				switch {
				case sub == "":
					t.Errorf("%q: got no substitute, want one", it)
				case eng.Violates(sub, p):
					t.Errorf("%q: got substitute %q, which breaks %v", it, sub,
						rules.Strings(eng.CheckIngredients([]string{sub}, p)))
				case rules.Normalize(sub) == rules.Normalize(it):
					t.Errorf("%q: got substitute %q, want a different ingredient", it, sub)
				}
			}
			if p.Restricted() && checked == 0 {
				t.Errorf("no lexicon item breaks a restricted persona's constraints; the test checks nothing")
			}
		})
	}
}

func TestSubstitute(t *testing.T) {
	eng := rules.New()
	persona := func(id string) schemas.Persona {
		t.Helper()
		p, err := schemas.DefaultPersona(id)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const (
		veg   = "persona_b_indian_veg"
		gf    = "persona_c_italian_gf"
		lowNa = "persona_d_japanese_lowsodium"
		vegan = "persona_e_mexican_vegan"
		keto  = "persona_f_chinese_keto"
	)
	for _, tc := range []struct {
		persona, item string
		have          []string
		want          string
	}{
		{veg, "chicken thighs", nil, "paneer"},
		{veg, "chicken thighs", []string{"paneer"}, "firm tofu"}, // already in the pantry
		{veg, "shrimp", nil, "paneer"},
		{veg, "fish sauce", nil, "coconut aminos"},
		{vegan, "chicken breast", nil, "firm tofu"}, // paneer is dairy
		{vegan, "ground beef", nil, "cremini mushrooms"},
		{vegan, "chorizo", nil, "soy chorizo"},
		{vegan, "eggs", nil, "firm tofu"},
		{vegan, "butter", nil, "olive oil"},
		{vegan, "honey", nil, "agave syrup"},
		{vegan, "queso fresco", nil, "vegan queso fresco"},
		{vegan, "cotija cheese", nil, "pepitas"},
		{gf, "spaghetti", nil, "gluten-free spaghetti"},
		{gf, "orzo", nil, "arborio rice"},
		{gf, "soy sauce", nil, "coconut aminos"}, // low-sodium soy sauce still has wheat
		{gf, "all-purpose flour", nil, "rice flour"},
		{lowNa, "soy sauce", nil, "low-sodium soy sauce"},
		{lowNa, "sea salt", nil, "yuzu juice"},
		{lowNa, "salt", nil, "lemon juice"},
		{lowNa, "white miso", nil, "low-sodium miso"},
		{lowNa, "instant dashi granules", nil, "kombu dashi"},
		{keto, "jasmine rice", nil, "cauliflower rice"},
		{keto, "egg noodles", nil, "shirataki noodles"},
		{keto, "rice noodles", nil, "shirataki noodles"},
		{keto, "honey", nil, "monk fruit sweetener"},
		{keto, "all-purpose flour", nil, "almond flour"},
		{keto, "cornstarch", nil, "xanthan gum"},
		{keto, "hoisin sauce", nil, "coconut aminos"},
	} {
		t.Run(tc.persona+"/"+tc.item, func(t *testing.T) {
			p := persona(tc.persona)
			got := Substitute(eng, tc.item, p, tc.have)
			if got != tc.want {
				t.Errorf("Substitute(%q) = %q, want %q", tc.item, got, tc.want)
			}
			if eng.Violates(got, p) {
				t.Errorf("substitute %q breaks %v", got, rules.Strings(eng.CheckIngredients([]string{got}, p)))
			}
		})
	}
}

// The judgement calls the table relies on, as the taxonomy makes them.
func TestSubstituteTaxonomyAssumptions(t *testing.T) {
	eng := rules.New()
	for _, tc := range []struct {
		item string
		want []string
	}{
		{"coconut aminos", []string{}}, // neither high_sodium nor gluten: safe for every persona
		{"low-sodium soy sauce", []string{schemas.CategoryGluten}},
		{"gluten-free spaghetti", []string{schemas.CategoryHighCarb}},
		{"cauliflower rice", []string{}},
		{"shirataki noodles", []string{}},
		{"flax egg", []string{}},
		{"nutritional yeast", []string{}},
		{"vegan queso fresco", []string{}},
		{"soy chorizo", []string{schemas.CategoryHighSodium}},
		{"kombu dashi", []string{}},
	} {
		if got := eng.Categories(tc.item); !slices.Equal(got, tc.want) {
			t.Errorf("Categories(%q) = %v, want %v", tc.item, got, tc.want)
		}
	}
}

// Table keys are written in normalised form, or the lookup by normalised phrase misses them.
func TestSubstituteKeysNormalised(t *testing.T) {
	for k, cands := range substitutes {
		if rules.Normalize(k) != k {
			t.Errorf("key %q normalises to %q; write it that way", k, rules.Normalize(k))
		}
		if len(cands) == 0 {
			t.Errorf("key %q has no candidates", k)
		}
		for _, c := range cands {
			if strings.TrimSpace(c) == "" {
				t.Errorf("key %q has an empty candidate", k)
			}
		}
	}
}

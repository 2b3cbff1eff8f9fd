package sftcorpus

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// Recipe shape. Recipes are kept short so a tiny model learns them in minutes of CPU
// training: 4–8 ingredients and 3–5 terse steps come to ≈540 bytes of compact JSON and, with
// a BPE trained on the corpus (TestTokenLengths), a median of ≈120 tokens (p95 ≈140).
const (
	MinIngredients = 4
	MaxIngredients = 8
	// extras is how many ingredients a recipe adds to a full pantry (more when the pantry
	// has fewer than MinIngredients): the ones the system prompt makes a model reach for.
	extras = 1
)

// cuisineStaples are the seasonings a recipe of a cuisine adds to the pantry when the system
// prompt names the cuisine. Keys are lower-case cuisine names.
var cuisineStaples = map[string][]string{
	"korean":        {"gochugaru", "toasted sesame oil", "garlic", "scallions"},
	"asian":         {"fresh ginger", "scallions", "sesame oil"},
	"indian":        {"cumin seeds", "turmeric", "garam masala", "fresh ginger"},
	"italian":       {"extra virgin olive oil", "garlic", "fresh basil", "dried oregano"},
	"mediterranean": {"extra virgin olive oil", "lemon", "fresh parsley"},
	"japanese":      {"rice vinegar", "fresh ginger", "scallions", "kombu"},
	"mexican":       {"lime", "fresh cilantro", "ground cumin", "white onion"},
	"latin":         {"lime", "fresh cilantro", "bell peppers"},
	"chinese":       {"garlic", "fresh ginger", "scallions", "sesame oil"},
}

// genericStaples are what a recipe adds when the prompt says nothing about the user.
var genericStaples = []string{"garlic", "yellow onion", "vegetable oil", "black pepper"}

// titleTemplates are per-cuisine dish names around the main ingredient ({main}). They never
// name an ingredient the recipe may lack ("Fried Rice" would, for the keto persona).
var titleTemplates = map[string][]string{
	"korean":        {"{main} Stew", "Stir-Fried {main}", "{main} Bowl", "Braised {main}"},
	"asian":         {"{main} Stir-Fry", "{main} Bowl"},
	"indian":        {"{main} Curry", "{main} Masala", "{main} Sabzi", "Spiced {main}"},
	"italian":       {"{main} al Forno", "Rustic {main} Skillet", "{main} with Herbs", "{main} Stew"},
	"mediterranean": {"{main} Salad", "Roasted {main} Plate"},
	"japanese":      {"Simmered {main}", "{main} Nimono", "{main} Soup", "Grilled {main}"},
	"mexican":       {"{main} Skillet", "{main} Bowl", "{main} Stew", "{main} Tinga"},
	"latin":         {"{main} Bowl", "{main} Stew"},
	"chinese":       {"Stir-Fried {main}", "{main} Stir-Fry", "Braised {main}", "{main} with Greens"},
}

var genericTitles = []string{"{main} Skillet", "{main} Bowl", "Simple {main} Stew"}

// pans per cuisine for the steps.
var pans = map[string]string{"korean": "pot", "indian": "pot", "japanese": "pot", "chinese": "wok", "asian": "wok"}

// builder makes the recipes of one persona.
type builder struct {
	p       schemas.Persona
	eng     *rules.Engine
	cuisine string // the recipe's cuisine label: the persona's first cuisine
	key     string // its lower-case lexicon key
	// Extras the persona may eat, by source.
	preferred, staples, generic []string
}

func newBuilder(p schemas.Persona, eng *rules.Engine) *builder {
	b := &builder{p: p, eng: eng, cuisine: "Home-style", key: ""}
	if len(p.Cuisines) > 0 && strings.TrimSpace(p.Cuisines[0]) != "" {
		b.cuisine = strings.TrimSpace(p.Cuisines[0])
		b.key = strings.ToLower(b.cuisine)
	}
	allowed := func(items []string) []string {
		return slices.DeleteFunc(slices.Clone(items), func(it string) bool { return eng.Violates(it, p) })
	}
	b.preferred = allowed(p.PreferredIngredients)
	b.staples = allowed(cuisineStaples[b.key])
	b.generic = allowed(genericStaples)
	return b
}

// recipe builds the answer to a request. With comply, the persona's forbidden pantry items
// are replaced in place by substitutes (or left out when none fits); otherwise they stay.
// Extras come from the sources the system prompt would make a model reach for.
func (b *builder) recipe(rng *rand.Rand, kind SystemKind, user string, pantry []string, comply bool) schemas.Recipe {
	var names []string
	base := pantry
	if len(base) == 0 {
		// An open request: cook from the persona's own kitchen.
		base = pick(rng, b.preferred, nil, 2)
	}
	for _, it := range base {
		if comply && b.eng.Violates(it, b.p) {
			it = Substitute(b.eng, it, b.p, append(slices.Clone(base), names...))
			if it == "" {
				continue
			}
		}
		if !hasItem(names, it) {
			names = append(names, it)
		}
	}

	var sources [][]string
	switch kind {
	case SystemStrong:
		sources = [][]string{b.preferred, b.staples, b.generic}
	case SystemWeak:
		sources = [][]string{b.staples, b.generic, b.preferred}
	default:
		sources = [][]string{b.generic, b.staples, b.preferred}
	}
	want := max(extras, MinIngredients-len(names))
	want = min(want, MaxIngredients-len(names))
	for _, src := range sources {
		if want <= 0 {
			break
		}
		got := pick(rng, src, names, want)
		names = append(names, got...)
		want -= len(got)
	}
	if len(names) > MaxIngredients {
		names = names[:MaxIngredients]
	}

	servings := 2 + rng.IntN(3)
	switch {
	case strings.Contains(user, "for two"):
		servings = 2
	case strings.Contains(user, "for the week"):
		servings = 4
	}
	ings := make([]schemas.Ingredient, len(names))
	for i, n := range names {
		ings[i] = schemas.Ingredient{Name: n, Quantity: quantity(n, servings)}
	}
	r := schemas.Recipe{
		Title:       b.title(rng, kind, names),
		Cuisine:     b.cuisine,
		Servings:    servings,
		Ingredients: ings,
		Steps:       b.steps(rng, names),
	}
	r.DietaryTags = Tags(b.eng, r.IngredientNames())
	return r
}

// pick draws up to k distinct items of src that are not in have, in random order.
func pick(rng *rand.Rand, src, have []string, k int) []string {
	var cands []string
	for _, s := range src {
		if !hasItem(have, s) && !hasItem(cands, s) {
			cands = append(cands, s)
		}
	}
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	return cands[:min(k, len(cands))]
}

// Tags returns the dietary tags ingredients earn: every known restriction
// (schemas.Restrictions, in that order and spelling) that none of them breaks.
func Tags(eng *rules.Engine, ingredients []string) []string {
	if eng == nil {
		eng = rules.New()
	}
	tags := []string{}
	for _, r := range schemas.Restrictions() {
		if len(eng.CheckIngredients(ingredients, schemas.Persona{DietaryRestrictions: []string{r}})) == 0 {
			tags = append(tags, r)
		}
	}
	return tags
}

// title names the dish after its main ingredient; with the persona in the system prompt it
// usually leads with one of the persona's flavour notes ("Spicy Pork Belly Stew"), which
// the rules judge's persona_match criterion rewards.
func (b *builder) title(rng *rand.Rand, kind SystemKind, names []string) string {
	ts := titleTemplates[b.key]
	if len(ts) == 0 {
		ts = genericTitles
	}
	t := strings.ReplaceAll(ts[rng.IntN(len(ts))], "{main}", titleCase(mainIngredient(names)))
	flavour := 0.0
	switch kind {
	case SystemStrong:
		flavour = 0.8
	case SystemWeak:
		flavour = 0.3
	}
	if u := rng.Float64(); u < flavour && len(b.p.FlavorNotes) > 0 {
		t = titleCase(b.p.FlavorNotes[rng.IntN(len(b.p.FlavorNotes))]) + " " + t
	}
	return t
}

// mainIngredient is the first protein, else the first vegetable or grain, else the first
// cheese or herb, else the first ingredient.
func mainIngredient(names []string) string {
	for _, want := range []func(kind) bool{
		func(k kind) bool { return k == kindProtein },
		func(k kind) bool { return k == kindVeg || k == kindGrain || k == kindCount },
		func(k kind) bool { return k == kindCheese || k == kindHerb },
	} {
		for _, n := range names {
			if k := classify(n).kind; want(k) && !isAromatic(n) {
				return n
			}
		}
	}
	return names[0]
}

// isAromatic reports seasonings that should not name a dish even if they are vegetables.
func isAromatic(name string) bool {
	toks := strings.Fields(rules.Normalize(name))
	return len(toks) > 0 && slices.Contains([]string{"garlic", "onion", "ginger", "scallion", "lime", "lemon", "chili", "jalapeno"}, toks[len(toks)-1])
}

// titleCase upper-cases the first letter of each word but the short function words
// ("hearts of palm" -> "Hearts of Palm").
func titleCase(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		if i > 0 && (w == "of" || w == "and" || w == "with" || w == "in") {
			continue
		}
		r := []rune(w)
		r[0] = unicode.ToUpper(r[0])
		words[i] = string(r)
	}
	return strings.Join(words, " ")
}

// steps writes 3–5 short steps that mention only listed ingredients. They are terse on
// purpose: every token of the answer is one the tiny model must learn to produce.
func (b *builder) steps(rng *rand.Rand, names []string) []string {
	pan := pans[b.key]
	if pan == "" {
		pan = "pan"
	}
	main := mainIngredient(names)
	var oil, sauce, herb string
	var rest []string
	for _, n := range names {
		switch c := classify(n); {
		case n == main:
		case c.kind == kindFat && oil == "":
			oil = n
		case c.kind == kindLiquid && sauce == "":
			sauce = n
		case c.kind == kindHerb && herb == "":
			herb = n
		default:
			rest = append(rest, n)
		}
	}
	mins := []int{5, 8, 10}
	var s []string
	if oil != "" {
		s = append(s, fmt.Sprintf("Heat the %s in a %s.", oil, pan))
	} else {
		s = append(s, fmt.Sprintf("Heat a %s over medium heat.", pan))
	}
	switch classify(main).kind {
	case kindFat, kindLiquid, kindSpice:
		// A pantry of seasonings only: nothing to cook on its own.
		rest = append([]string{main}, rest...)
	default:
		s = append(s, fmt.Sprintf("Cook the %s for %d minutes.", main, mins[rng.IntN(len(mins))]))
	}
	if len(rest) > 0 {
		s = append(s, "Add the "+joinAnd(rest[:min(2, len(rest))])+".")
	}
	if sauce != "" {
		s = append(s, "Stir in the "+sauce+".")
	}
	if herb != "" {
		s = append(s, "Top with the "+herb+" and serve.")
	} else {
		s = append(s, "Serve hot.")
	}
	return s
}

// joinAnd lists one or two items: "a" or "a and b".
func joinAnd(items []string) string { return strings.Join(items, " and ") }

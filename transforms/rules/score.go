package rules

import (
	"math"
	"slices"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// Scoring constants. The rules judge scores the four labelling criteria of PIPELINE.md
// §3.2 on the same 0–10 scale as the LLM judge, so the two can be compared and averaged.
const (
	// RestrictionPenalty is taken from dietary_compliance per restriction violation: one
	// offending ingredient halves the score, two zero it.
	RestrictionPenalty = 5.0
	// ForbiddenPenalty is taken from forbidden_avoided per forbidden-entry hit: a recipe
	// serving a forbidden ingredient is nearly worthless to the persona (2, then 0).
	ForbiddenPenalty = 8.0
	// TieEpsilon is the band of total scores (out of 40) within which two recipes with
	// the same number of violations tie: smaller differences are noise in the soft
	// criteria, not a preference worth training on.
	TieEpsilon = 0.5
	// RepeatPenalty is taken from a recipe's standing (Standing) per ingredient line that
	// names an ingredient already listed: "gochugaru" listed three times is a broken recipe
	// whatever else it does, and preferring it would teach a model to repeat itself.
	RepeatPenalty = 2.0

	maxScore = 10.0
	// cuisine_alignment = label (recipe.Cuisine names a persona cuisine) + markers
	// (signature ingredients of the persona's cuisines).
	labelPrimary   = 5.0  // recipe.Cuisine names the persona's first cuisine
	labelSecondary = 4.0  // ... or another of its cuisines ("Asian" for the Korean persona)
	markerPoints   = 1.25 // per distinct signature ingredient; 4 of them fill the 5 points
	// persona_match = preferred-ingredient overlap + flavour notes met.
	preferredWeight     = 7.0
	preferredSaturation = 4 // using 4 preferred ingredients is a full match
	flavorWeight        = 3.0
)

// cuisineMarkers are signature ingredients that place a dish in a cuisine. They are
// deliberately short and specific: shared staples (garlic, onion) say nothing.
var cuisineMarkers = map[string][]string{
	"korean":        {"gochujang", "gochugaru", "kimchi", "doenjang", "ssamjang", "sesame oil", "perilla", "napa cabbage", "korean radish", "rice cake", "anchovy"},
	"asian":         {"soy sauce", "sesame oil", "ginger", "scallion", "rice vinegar", "bok choy", "tofu", "lemongrass", "fish sauce"},
	"indian":        {"garam masala", "turmeric", "cumin", "cardamom", "mustard seed", "curry leaf", "fenugreek", "asafoetida", "ghee", "paneer", "dal", "tamarind", "coriander"},
	"italian":       {"basil", "oregano", "olive oil", "parmesan", "parmigiano", "pecorino", "mozzarella", "arborio", "polenta", "balsamic", "ricotta", "pancetta", "prosciutto", "rosemary"},
	"mediterranean": {"olive oil", "lemon", "oregano", "chickpea", "feta", "olive", "tahini", "cucumber", "parsley", "eggplant"},
	"japanese":      {"dashi", "kombu", "miso", "mirin", "sake", "nori", "wasabi", "shiso", "yuzu", "bonito", "shiitake", "daikon", "furikake", "rice vinegar", "ponzu"},
	"mexican":       {"tortilla", "jalapeno", "chipotle", "cilantro", "lime", "tomatillo", "poblano", "ancho", "guajillo", "masa", "epazote", "queso fresco", "black bean", "pinto bean", "avocado"},
	"latin":         {"lime", "cilantro", "plantain", "black bean", "sofrito", "achiote", "aji", "yuca", "avocado"},
	"chinese":       {"soy sauce", "oyster sauce", "shaoxing", "sichuan peppercorn", "five spice", "star anise", "hoisin", "doubanjiang", "black vinegar", "bok choy", "ginger", "scallion", "sesame oil", "chili oil"},
}

// flavorIndicators are ingredients that deliver a flavour note. A note is also met when
// the recipe title says it ("Spicy Tofu Stew"). Notes without an entry can only be met by
// the title.
var flavorIndicators = map[string][]string{
	"spicy":     {"chili", "chilli", "chile", "gochugaru", "gochujang", "jalapeno", "serrano", "habanero", "chipotle", "cayenne", "red pepper flake", "sriracha", "sichuan peppercorn", "ancho", "guajillo", "arbol", "hot sauce", "wasabi", "doubanjiang", "kashmiri"},
	"fermented": {"kimchi", "gochujang", "doenjang", "miso", "soy sauce", "fish sauce", "sauerkraut", "natto", "tempeh", "yogurt", "doubanjiang", "douchi", "fermented"},
	"savory":    {"garlic", "onion", "mushroom", "shiitake", "soy sauce", "scallion", "sesame oil", "oyster sauce", "doenjang", "stock", "broth"},
	"garlicky":  {"garlic"},
	"umami":     {"mushroom", "shiitake", "kombu", "tomato", "parmesan", "parmigiano", "miso", "nori", "seaweed", "bonito", "katsuobushi", "anchovy", "nutritional yeast", "soy sauce", "dashi"},
	"aromatic":  {"ginger", "garlic", "cumin", "cardamom", "cinnamon", "clove", "star anise", "garam masala", "coriander", "curry leaf", "lemongrass", "five spice", "bay leaf", "fennel seed", "mustard seed", "sichuan peppercorn"},
	"earthy":    {"cumin", "turmeric", "lentil", "dal", "mushroom", "spinach", "beet", "chickpea", "fenugreek", "potato", "cauliflower"},
	"creamy":    {"paneer", "yogurt", "cream", "ghee", "coconut milk", "coconut cream", "cashew", "avocado", "butter", "ricotta", "mascarpone", "tahini", "mozzarella", "burrata"},
	"fresh":     {"basil", "parsley", "mint", "lemon", "tomato", "cucumber", "cilantro", "arugula", "zucchini"},
	"herbal":    {"basil", "oregano", "rosemary", "thyme", "sage", "parsley", "mint", "dill", "bay leaf", "marjoram", "cilantro", "shiso"},
	"clean":     {"ginger", "cucumber", "daikon", "tofu", "kombu", "shiso", "rice vinegar", "yuzu"},
	"citrusy":   {"yuzu", "lemon", "lime", "orange", "grapefruit", "sudachi", "ponzu", "citrus"},
	"smoky":     {"chipotle", "smoked", "ancho", "guajillo", "pasilla", "liquid smoke", "charred", "mezcal"},
	"tangy":     {"lime", "lemon", "vinegar", "tamarind", "tomatillo", "pickled", "yogurt", "amchur"},
	"numbing":   {"sichuan peppercorn", "sichuan pepper", "mala", "prickly ash"},
}

// KnownFlavor reports whether the rules judge has ingredient indicators for a flavour
// note; other notes are only met by the recipe title.
func KnownFlavor(note string) bool {
	_, ok := flavorIndicators[strings.ToLower(strings.TrimSpace(note))]
	return ok
}

// descriptors are dropped before comparing preferred ingredients with recipe lines, so
// "fresh ginger" matches "ginger, peeled" and "extra virgin olive oil" matches "olive oil".
var descriptors = setOf("fresh", "dried", "dry", "toasted", "roasted", "ground", "whole",
	"chopped", "minced", "sliced", "diced", "grated", "crushed", "extra", "virgin", "organic",
	"raw", "frozen", "canned", "cooked", "boneless", "skinless", "firm", "silken", "plain",
	"large", "small", "medium", "finely", "thinly", "peeled")

// genericWords never match a more specific preferred ingredient on their own: a recipe
// using "oil" does not use the persona's "toasted sesame oil".
var genericWords = setOf("oil", "sauce", "pepper", "powder", "paste", "seed", "leaf",
	"water", "vinegar", "flour", "salt", "sugar", "spice", "stock", "broth", "cheese", "bean",
	"mushroom", "noodle", "rice", "wine")

// Score rates a recipe for a persona on the four labelling criteria, deterministically:
//
//   - dietary_compliance: 10 − RestrictionPenalty per restriction violation (floor 0);
//   - forbidden_avoided: 10 − ForbiddenPenalty per forbidden-entry hit (floor 0);
//   - cuisine_alignment: 5 (4 for a secondary cuisine) when recipe.Cuisine names a persona
//     cuisine, plus 1.25 per signature ingredient of the persona's cuisines (at most 5);
//     twice the label score when no persona cuisine has signature ingredients;
//   - persona_match: 7 × (preferred ingredients used, saturating at 4) + 3 × (share of
//     flavour notes met by an indicator ingredient or the title); a persona with only one
//     of the two gets that one scaled to 10, one with neither a neutral 5.
func (e *Engine) Score(r schemas.Recipe, p schemas.Persona) schemas.CriterionScores {
	return e.score(r, p, e.Check(r, p))
}

func (e *Engine) score(r schemas.Recipe, p schemas.Persona, vs []Violation) schemas.CriterionScores {
	restriction, forbidden := 0, 0
	for _, v := range vs {
		if v.Constraint == ConstraintForbidden {
			forbidden++
		} else {
			restriction++
		}
	}
	lines := make([][]string, 0, len(r.Ingredients))
	for _, in := range r.Ingredients {
		if t := tokens(in.Name); len(t) > 0 {
			lines = append(lines, t)
		}
	}
	return schemas.CriterionScores{
		DietaryCompliance: math.Max(0, maxScore-RestrictionPenalty*float64(restriction)),
		ForbiddenAvoided:  math.Max(0, maxScore-ForbiddenPenalty*float64(forbidden)),
		CuisineAlignment:  cuisineAlignment(r.Cuisine, lines, p.Cuisines),
		PersonaMatch:      personaMatch(r.Title, lines, p),
	}
}

// cuisineAlignment implements the cuisine_alignment criterion (see Score).
func cuisineAlignment(cuisine string, lines [][]string, personaCuisines []string) float64 {
	label := 0.0
	ct := tokens(cuisine)
	var markers []string
	for i, c := range personaCuisines {
		if len(ct) > 0 && containsPhrase(ct, tokens(c)) {
			if i == 0 {
				label = labelPrimary
			} else {
				label = math.Max(label, labelSecondary)
			}
		}
		for _, m := range cuisineMarkers[Normalize(c)] {
			if !slices.Contains(markers, m) {
				markers = append(markers, m)
			}
		}
	}
	if len(markers) == 0 {
		return 2 * label
	}
	found := 0
	for _, m := range markers {
		if anyLineHas(lines, tokens(m)) {
			found++
		}
	}
	return label + math.Min(maxScore-labelPrimary, markerPoints*float64(found))
}

// personaMatch implements the persona_match criterion (see Score).
func personaMatch(title string, lines [][]string, p schemas.Persona) float64 {
	pref := -1.0
	if len(p.PreferredIngredients) > 0 {
		hits := 0
		for _, want := range p.PreferredIngredients {
			if slices.ContainsFunc(lines, func(l []string) bool { return preferredMatch(core(tokens(want)), core(l)) }) {
				hits++
			}
		}
		sat := min(preferredSaturation, len(p.PreferredIngredients))
		pref = float64(min(hits, sat)) / float64(sat)
	}
	flavor := -1.0
	if len(p.FlavorNotes) > 0 {
		tt := tokens(title)
		met := 0
		for _, note := range p.FlavorNotes {
			nt := tokens(note)
			ok := len(nt) > 0 && containsPhrase(tt, nt)
			for _, ind := range flavorIndicators[strings.ToLower(strings.TrimSpace(note))] {
				ok = ok || anyLineHas(lines, tokens(ind))
			}
			if ok {
				met++
			}
		}
		flavor = float64(met) / float64(len(p.FlavorNotes))
	}
	switch {
	case pref < 0 && flavor < 0:
		return maxScore / 2
	case pref < 0:
		return maxScore * flavor
	case flavor < 0:
		return maxScore * pref
	}
	return preferredWeight*pref + flavorWeight*flavor
}

// core drops descriptor words.
func core(toks []string) []string {
	return slices.DeleteFunc(slices.Clone(toks), func(w string) bool { return descriptors[w] })
}

// preferredMatch reports whether a recipe line uses a preferred ingredient: one contains
// the other as a phrase, except that a lone generic word ("oil") matches nothing.
func preferredMatch(want, line []string) bool {
	switch {
	case len(want) == 0 || len(line) == 0:
		return false
	case containsPhrase(line, want):
		return true
	case len(line) == 1 && genericWords[line[0]]:
		return false
	}
	return containsPhrase(want, line)
}

// anyLineHas reports whether any ingredient line contains the phrase.
func anyLineHas(lines [][]string, phrase []string) bool {
	return len(phrase) > 0 && slices.ContainsFunc(lines, func(l []string) bool { return containsPhrase(l, phrase) })
}

// Repeats counts the ingredient lines of r that name an ingredient listed above them
// (compared after Normalize, so "Garlic" repeats "garlic,").
func Repeats(r schemas.Recipe) int {
	seen := map[string]bool{}
	n := 0
	for _, in := range r.Ingredients {
		k := Normalize(in.Name)
		if seen[k] {
			n++
		}
		seen[k] = true
	}
	return n
}

// Standing is what Compare ranks recipes of equal hard-constraint standing by: the total of
// the four criteria less RepeatPenalty per repeated ingredient line.
func Standing(s schemas.CriterionScores, r schemas.Recipe) float64 {
	return s.Total() - RepeatPenalty*float64(Repeats(r))
}

// Compare is the rules judge's verdict on two recipes for a persona: schemas.RulesPrefersA,
// schemas.RulesPrefersB or schemas.RulesTie, with each recipe's scores and violations.
// Hard constraints dominate: the recipe with fewer violations wins whatever its soft
// scores. With equal violation counts the higher Standing (criteria total less repeated
// ingredients) wins, unless the two are within TieEpsilon.
func (e *Engine) Compare(a, b schemas.Recipe, p schemas.Persona) (winner string, sa, sb schemas.CriterionScores, va, vb []Violation) {
	va, vb = e.Check(a, p), e.Check(b, p)
	sa, sb = e.score(a, p, va), e.score(b, p, vb)
	switch d := Standing(sa, a) - Standing(sb, b); {
	case len(va) < len(vb):
		winner = schemas.RulesPrefersA
	case len(va) > len(vb):
		winner = schemas.RulesPrefersB
	case math.Abs(d) <= TieEpsilon:
		winner = schemas.RulesTie
	case d > 0:
		winner = schemas.RulesPrefersA
	default:
		winner = schemas.RulesPrefersB
	}
	return winner, sa, sb, va, vb
}

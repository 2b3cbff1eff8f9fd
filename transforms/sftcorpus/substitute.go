package sftcorpus

import (
	"slices"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// substitutes maps an ingredient phrase to replacements, best first. An item is matched by
// the longest phrase it contains (as whole words, after rules.Normalize), so "egg noodles"
// finds "egg noodle" before "egg", and "sea salt" finds "sea salt" before "salt"; between
// equally long phrases the alphabetically first wins, so list the compound ("cotija
// cheese") when the other word would pick the wrong row. Keys are written normalised
// (singular, lower case, no hyphens). Substitute
// takes the first candidate that the persona may eat and that the recipe does not already
// have; the order puts the idiomatic swap first (paneer for chicken in an Indian kitchen)
// and lets a stricter persona fall through to the next (tofu for the vegan).
//
// The rules engine, not this table, decides what complies: TestSubstitutesComply checks
// that every lexicon item a persona must not eat gets a substitute the engine accepts.
// Judgement calls, checked against taxonomy.yaml: coconut aminos is neither high_sodium nor
// gluten there; "low-sodium soy sauce" still has gluten (fine for the low-sodium persona
// only); "gluten-free pasta" and "rice flour" keep high_carb (fine for the coeliac, not for
// keto, who gets zucchini noodles and almond flour).
var substitutes = map[string][]string{
	// meat
	"chicken":   {"paneer", "firm tofu", "jackfruit"},
	"lamb":      {"chickpeas", "paneer", "firm tofu"},
	"beef":      {"cremini mushrooms", "firm tofu"},
	"pork":      {"firm tofu", "shiitake mushrooms"},
	"steak":     {"portobello mushrooms", "firm tofu"},
	"chorizo":   {"soy chorizo", "cremini mushrooms"},
	"bacon":     {"smoked paprika", "shiitake mushrooms"},
	"sausage":   {"cremini mushrooms", "firm tofu"},
	"meat":      {"firm tofu", "cremini mushrooms"},
	"short rib": {"king oyster mushrooms", "firm tofu"},
	// seafood
	"shrimp":        {"paneer", "hearts of palm", "firm tofu"},
	"fish":          {"paneer", "firm tofu", "hearts of palm"},
	"salmon":        {"firm tofu", "king oyster mushrooms"},
	"cod":           {"firm tofu", "king oyster mushrooms"},
	"anchovy":       {"shiitake mushrooms", "kombu"},
	"fish sauce":    {"coconut aminos", "low-sodium soy sauce"},
	"oyster sauce":  {"coconut aminos", "mushroom sauce"},
	"dashi":         {"kombu dashi", "shiitake dashi"},
	"instant dashi": {"kombu dashi", "shiitake dashi"},
	"dashi granule": {"kombu dashi", "shiitake dashi"},
	"kimchi":        {"vegan kimchi", "napa cabbage"},
	// dairy
	"butter":        {"olive oil", "vegetable oil"},
	"ghee":          {"vegetable oil", "olive oil"},
	"cheese":        {"nutritional yeast", "avocado"},
	"cotija":        {"pepitas", "nutritional yeast"},
	"cotija cheese": {"pepitas", "nutritional yeast"},
	"queso fresco":  {"vegan queso fresco", "avocado"},
	"crema":         {"vegan crema", "avocado"},
	"paneer":        {"firm tofu", "chickpeas"},
	"yogurt":        {"coconut yogurt"},
	"milk":          {"coconut milk", "oat milk"},
	"cream":         {"coconut cream"},
	"parmesan":      {"nutritional yeast", "toasted pine nuts"},
	"pecorino":      {"nutritional yeast", "toasted pine nuts"},
	"feta":          {"vegan feta", "kalamata olives"},
	"mozzarella":    {"vegan mozzarella", "avocado"},
	"ricotta":       {"cashew ricotta"},
	// eggs and honey
	"egg":   {"firm tofu", "flax egg"},
	"honey": {"agave syrup", "monk fruit sweetener"},
	// gluten
	"spaghetti":  {"gluten-free spaghetti", "zucchini noodles"},
	"penne":      {"gluten-free penne", "zucchini noodles"},
	"pasta":      {"gluten-free pasta", "zucchini noodles"},
	"orzo":       {"arborio rice", "cauliflower rice"},
	"gnocchi":    {"gluten-free gnocchi", "cauliflower"},
	"couscous":   {"quinoa", "cauliflower rice"},
	"bread":      {"gluten-free bread", "lettuce cups"},
	"ciabatta":   {"gluten-free bread", "lettuce cups"},
	"pita":       {"gluten-free flatbread", "lettuce cups"},
	"breadcrumb": {"gluten-free breadcrumbs", "almond flour"},
	"flour":      {"rice flour", "almond flour"},
	"noodle":     {"rice noodles", "shirataki noodles", "zucchini noodles"},
	"egg noodle": {"rice noodles", "shirataki noodles", "zucchini noodles"},
	"soba":       {"rice noodles", "shirataki noodles"},
	"udon":       {"rice noodles", "shirataki noodles"},
	"soy sauce":  {"low-sodium soy sauce", "coconut aminos"},
	"hoisin":     {"coconut aminos"},
	"gochujang":  {"gochugaru"},
	"tortilla":   {"lettuce cups", "gluten-free tortillas"},
	// high sodium
	"salt":         {"lemon juice", "fresh herbs"},
	"sea salt":     {"yuzu juice", "lemon juice"},
	"miso":         {"low-sodium miso", "kombu"},
	"doenjang":     {"low-sodium miso", "kombu"},
	"pickled plum": {"shiso leaves", "rice vinegar"},
	"pickled":      {"rice vinegar", "fresh herbs"},
	"stock":        {"low-sodium stock", "water"},
	"broth":        {"low-sodium broth", "water"},
	// high carb
	"rice":         {"cauliflower rice", "broccoli rice"},
	"rice noodle":  {"shirataki noodles", "zucchini noodles"},
	"glass noodle": {"shirataki noodles", "zucchini noodles"},
	"rice cake":    {"firm tofu", "napa cabbage"},
	"cornstarch":   {"xanthan gum"},
	"sugar":        {"monk fruit sweetener"},
	"potato":       {"cauliflower", "turnips"},
	"sweet potato": {"kabocha squash", "cauliflower"},
	"bean":         {"green beans", "firm tofu"},
	"chickpea":     {"cauliflower", "firm tofu"},
	"lentil":       {"cauliflower", "firm tofu"},
	"corn":         {"zucchini", "bell peppers"},
	"polenta":      {"cauliflower mash"},
	"quinoa":       {"cauliflower rice"},
	"plantain":     {"zucchini"},
	"yuca":         {"cauliflower"},
}

// categoryFallback is tried when no phrase of the table matches, by the item's first
// violated category.
var categoryFallback = map[string][]string{
	schemas.CategoryMeat:       {"firm tofu", "cremini mushrooms"},
	schemas.CategorySeafood:    {"firm tofu", "hearts of palm"},
	schemas.CategoryDairy:      {"olive oil", "nutritional yeast"},
	schemas.CategoryEggs:       {"flax egg"},
	schemas.CategoryHoney:      {"monk fruit sweetener"},
	schemas.CategoryGluten:     {"rice flour", "almond flour"},
	schemas.CategoryHighSodium: {"lemon juice", "fresh herbs"},
	schemas.CategoryHighCarb:   {"cauliflower rice", "zucchini"},
}

// substituteKeys are the table's phrases as word lists, longest first (ties in key order),
// so the longest match wins deterministically.
var substituteKeys = func() [][]string {
	keys := make([]string, 0, len(substitutes))
	for k := range substitutes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([][]string, len(keys))
	for i, k := range keys {
		out[i] = strings.Fields(rules.Normalize(k))
	}
	slices.SortStableFunc(out, func(a, b []string) int { return len(b) - len(a) })
	return out
}()

// Substitute returns the replacement of an ingredient the persona must not eat: the first
// candidate of the longest matching table phrase (then of the category fallback) that the
// persona may eat and that is not in have (compared after rules.Normalize). It returns ""
// when no candidate fits; the recipe then simply leaves the item out.
func Substitute(eng *rules.Engine, item string, p schemas.Persona, have []string) string {
	if eng == nil {
		eng = rules.New()
	}
	toks := strings.Fields(rules.Normalize(item))
	var cands []string
	for _, k := range substituteKeys {
		if containsPhrase(toks, k) {
			cands = append(cands, substitutes[strings.Join(k, " ")]...)
			break
		}
	}
	for _, c := range eng.Categories(item) {
		cands = append(cands, categoryFallback[c]...)
	}
	for _, c := range cands {
		if !eng.Violates(c, p) && !hasItem(have, c) {
			return c
		}
	}
	return ""
}

// hasItem reports whether items holds item, compared after rules.Normalize.
func hasItem(items []string, item string) bool {
	key := rules.Normalize(item)
	return slices.ContainsFunc(items, func(s string) bool { return rules.Normalize(s) == key })
}

// containsPhrase reports whether p occurs in toks as consecutive words.
func containsPhrase(toks, p []string) bool {
	for i := 0; i+len(p) <= len(toks); i++ {
		if slices.Equal(toks[i:i+len(p)], p) {
			return true
		}
	}
	return false
}

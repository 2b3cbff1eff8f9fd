package rules

import (
	"strings"
	"unicode"
)

// Normalize returns the form in which ingredient names are matched: lower-case words
// separated by single spaces, accents folded ("jalapeños" -> "jalapeno"), punctuation
// dropped, quantities and the unit right after them dropped ("2 cups jasmine rice" ->
// "jasmine rice"), and every word made singular ("tomatoes" -> "tomato"). Taxonomy
// phrases go through the same function, so singular/plural and spelling noise cannot
// make a recipe line miss its entry.
func Normalize(name string) string { return strings.Join(tokens(name), " ") }

// tokens is Normalize as a word list, the unit of phrase matching.
func tokens(name string) []string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if f, ok := accentFold[r]; ok {
			r = f
		}
		switch {
		case r == '\'' || r == '\u2019' || r == '\u2018' || r == '`':
			// Drop apostrophes inside words: "baker's" -> "bakers".
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		default:
			b.WriteByte(' ')
		}
	}
	fields := strings.Fields(b.String())
	out := make([]string, 0, len(fields))
	afterNumber, afterUnit := false, false
	for _, f := range fields {
		if strings.ContainsFunc(f, unicode.IsDigit) {
			// "2", "1/2" (already split), "100g", "2x": quantities, not names.
			afterNumber, afterUnit = true, false
			continue
		}
		w := singular(f)
		switch {
		case afterNumber && units[w]:
			afterNumber, afterUnit = false, true
			continue
		case afterUnit && w == "of":
			afterUnit = false
			continue
		}
		afterNumber, afterUnit = false, false
		out = append(out, w)
	}
	return out
}

// units are dropped only right after a number, so "clove" survives in "ground cloves"
// and "can" in a name is never lost on its own.
var units = setOf(
	"g", "gram", "kg", "kilogram", "mg", "ml", "l", "liter", "litre", "dl", "cl",
	"cup", "c", "tbsp", "tbs", "tb", "tablespoon", "tsp", "teaspoon", "oz", "ounce",
	"lb", "lbs", "pound", "pinch", "dash", "clove", "slice", "piece", "pc", "can", "tin",
	"package", "pkg", "packet", "bunch", "handful", "stalk", "sprig", "inch", "cm",
	"quart", "qt", "pint", "pt", "x", "large", "medium", "small", "head", "sheet", "block",
)

// accentFold maps the accented letters of recipe Spanish, French and Italian names to
// ASCII, so "jalapeño" and "jalapeno" are one word.
var accentFold = map[rune]rune{
	'á': 'a', 'à': 'a', 'â': 'a', 'ä': 'a', 'ã': 'a', 'å': 'a',
	'é': 'e', 'è': 'e', 'ê': 'e', 'ë': 'e',
	'í': 'i', 'ì': 'i', 'î': 'i', 'ï': 'i',
	'ó': 'o', 'ò': 'o', 'ô': 'o', 'ö': 'o', 'õ': 'o',
	'ú': 'u', 'ù': 'u', 'û': 'u', 'ü': 'u',
	'ñ': 'n', 'ç': 'c',
}

// irregular plurals, and words that end in s but are singular. Anything listed here maps
// to its value verbatim.
var irregular = map[string]string{
	"leaves": "leaf", "halves": "half", "loaves": "loaf", "calves": "calf", "knives": "knife",
	"chilies": "chili", "chillies": "chilli", "chilis": "chili", "cookies": "cookie",
	"pies": "pie", "veggies": "veggie", "brownies": "brownie", "smoothies": "smoothie",
	"nopales": "nopal", "frijoles": "frijol", "molasses": "molasses", "kiwis": "kiwi",
	"grits": "grits",
}

// singular makes an English food word singular with a few suffix rules. It needs to be
// consistent more than correct: taxonomy phrases and recipe lines share it.
func singular(w string) string {
	if s, ok := irregular[w]; ok {
		return s
	}
	if len(w) <= 3 {
		return w // "gas", "bus", "yes": too short to be a plural we care about
	}
	switch {
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"):
		return w // swiss, bass, grass, couscous, hummus, asparagus, octopus
	case strings.HasSuffix(w, "ies"):
		return w[:len(w)-3] + "y" // berries, anchovies
	case strings.HasSuffix(w, "oes"):
		return w[:len(w)-2] // tomatoes, potatoes, mangoes
	case strings.HasSuffix(w, "sses"), strings.HasSuffix(w, "shes"),
		strings.HasSuffix(w, "ches"), strings.HasSuffix(w, "xes"), strings.HasSuffix(w, "zes"):
		return w[:len(w)-2] // glasses, radishes, peaches, boxes
	case strings.HasSuffix(w, "s"):
		return w[:len(w)-1] // cheeses, noodles, eggs
	}
	return w
}

// setOf builds a string set.
func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

package prompts

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/pantrypilot/recipe-dpo/transforms/rules"
	"gopkg.in/yaml.v3"
)

// lexiconYAML is the default pantry lexicon.
//
//go:embed lexicon.yaml
var lexiconYAML []byte

// Lexicon is the data prompts are generated from: pantry ingredients per cuisine, staples
// for every cuisine, and persona-neutral request templates.
type Lexicon struct {
	// Staples are cuisine-neutral ingredients, drawn for every persona.
	Staples []string `yaml:"staples"`
	// Cuisines maps a lower-case cuisine name ("korean") to its pantry ingredients.
	Cuisines map[string][]string `yaml:"cuisines"`
	// Templates are requests with {items} (required) and optionally {cuisine}.
	Templates []string `yaml:"templates"`
}

// defaultLexicon parses the embedded lexicon once.
var defaultLexicon = sync.OnceValue(func() Lexicon {
	l, err := ParseLexicon(lexiconYAML)
	if err != nil {
		panic(fmt.Sprintf("prompts: embedded lexicon.yaml: %v", err)) // caught by the package tests
	}
	return l
})

// DefaultLexicon returns the embedded lexicon.yaml. Callers get their own copy of the
// slices and map, so changing it does not change the default.
func DefaultLexicon() Lexicon {
	l := defaultLexicon()
	out := Lexicon{Staples: slices.Clone(l.Staples), Templates: slices.Clone(l.Templates), Cuisines: map[string][]string{}}
	for k, v := range l.Cuisines {
		out.Cuisines[k] = slices.Clone(v)
	}
	return out
}

// ParseLexicon decodes and validates a lexicon in the format of lexicon.yaml; unknown
// fields are errors.
func ParseLexicon(data []byte) (Lexicon, error) {
	var l Lexicon
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		return Lexicon{}, fmt.Errorf("lexicon: %w", err)
	}
	return l, l.Validate()
}

// placeholder matches {name} in templates.
var placeholder = regexp.MustCompile(`\{[a-z_]*\}`)

// Validate checks the lexicon can generate neutral prompts: every template has {items}
// and no other placeholder than {cuisine}, no template or ingredient reveals a diet,
// cuisine keys are lower-case, and no list repeats an ingredient.
func (l Lexicon) Validate() error {
	var errs []error
	if len(l.Templates) == 0 {
		errs = append(errs, errors.New("lexicon: no templates"))
	}
	for _, t := range l.Templates {
		if !strings.Contains(t, "{items}") {
			errs = append(errs, fmt.Errorf("lexicon: template %q has no {items}", t))
		}
		for _, ph := range placeholder.FindAllString(t, -1) {
			if ph != "{items}" && ph != "{cuisine}" {
				errs = append(errs, fmt.Errorf("lexicon: template %q: unknown placeholder %s (use {items} or {cuisine})", t, ph))
			}
		}
		if !IsNeutral(t) {
			errs = append(errs, fmt.Errorf("lexicon: template %q mentions a diet; requests must be persona-neutral", t))
		}
	}
	check := func(where string, items []string) {
		seen := map[string]bool{}
		for _, it := range items {
			key := rules.Normalize(it)
			switch {
			case key == "":
				errs = append(errs, fmt.Errorf("lexicon: %s: empty ingredient", where))
			case seen[key]:
				errs = append(errs, fmt.Errorf("lexicon: %s: %q is listed twice", where, it))
			case !IsNeutral(it):
				errs = append(errs, fmt.Errorf("lexicon: %s: %q mentions a diet; pantry items must be persona-neutral", where, it))
			}
			seen[key] = true
		}
	}
	check("staples", l.Staples)
	for _, c := range slices.Sorted(maps.Keys(l.Cuisines)) {
		if c != strings.ToLower(c) {
			errs = append(errs, fmt.Errorf("lexicon: cuisine key %q must be lower case", c))
		}
		check("cuisine "+c, l.Cuisines[c])
	}
	return errors.Join(errs...)
}

// dietWords and dietPhrases reveal a dietary restriction; requests and pantry items must
// not contain them (compared on rules.Normalize words), or the prompt would tell the
// model what variant A's system prompt is supposed to teach.
var (
	dietWords = map[string]bool{
		"vegetarian": true, "vegan": true, "gluten": true, "keto": true, "ketogenic": true,
		"sodium": true, "carb": true, "meatless": true, "diet": true, "dietary": true,
		"restriction": true, "allergy": true, "allergic": true, "coeliac": true, "celiac": true,
		"gf": true, "paleo": true, "pescatarian": true,
	}
	dietPhrases = [][]string{
		{"plant", "based"}, {"dairy", "free"}, {"egg", "free"}, {"meat", "free"},
		{"sugar", "free"}, {"salt", "free"}, {"low", "salt"}, {"no", "salt"}, {"unsalted"},
	}
)

// IsNeutral reports whether text avoids every word that reveals a diet ("vegan",
// "gluten-free", "low-sodium", "keto", ...).
func IsNeutral(text string) bool {
	toks := strings.Fields(rules.Normalize(text))
	for _, w := range toks {
		if dietWords[w] {
			return false
		}
	}
	for _, p := range dietPhrases {
		for i := 0; i+len(p) <= len(toks); i++ {
			if slices.Equal(toks[i:i+len(p)], p) {
				return false
			}
		}
	}
	return true
}

// Package rules is the dietary-rules engine: an ingredient taxonomy (taxonomy.yaml) and
// the matching that decides whether a recipe breaks a persona's hard constraints. It is
// the offline preference judge of the data-preparation job, the veto applied to LLM
// labels, and a deterministic scorer for evaluation, so it must be predictable: the same
// recipe and persona always give the same violations, in the same order.
//
// Only the ingredient list is authoritative. Titles and steps are not checked, because a
// title such as "Chicken-Style Tofu" or a step saying "instead of fish sauce" would be
// false positives, and a model that cooks with an ingredient it did not list has produced
// an invalid recipe that other checks catch.
//
// Matching works on normalised names (see Normalize) by whole-word phrases, longest
// first, with qualifiers ("gluten-free", "low-sodium", "vegan") and negations ("egg-free",
// "no salt added"); taxonomy.yaml documents every judgement call (tamari, cornstarch,
// kimchi, oats, ...).
package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// ConstraintForbidden is the Constraint of violations caused by a persona's
// forbidden_ingredients entry; restriction violations carry the restriction name.
const ConstraintForbidden = "forbidden"

// Violation is one broken hard constraint: which constraint, why, and the ingredient line
// (as the recipe wrote it) that breaks it.
type Violation struct {
	// Constraint is a dietary restriction ("vegetarian") or ConstraintForbidden.
	Constraint string `json:"constraint"`
	// Category is the taxonomy category that was hit ("meat"); for a forbidden entry it is
	// the entry itself, a category or a plain ingredient name ("soy sauce").
	Category string `json:"category"`
	// Ingredient is the offending ingredient name, trimmed but otherwise verbatim.
	Ingredient string `json:"ingredient"`
}

// String renders the violation as "vegetarian: chicken thigh (meat)", the form stored in
// PreferencePair.ChosenViolations and shown to judges.
func (v Violation) String() string {
	return fmt.Sprintf("%s: %s (%s)", v.Constraint, v.Ingredient, v.Category)
}

// Strings renders violations with Violation.String.
func Strings(vs []Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

// restrictionCategories maps each restriction to the categories it excludes, in canonical
// order. Vegan includes honey, which vegetarian does not.
var restrictionCategories = map[string][]string{
	schemas.RestrictionVegetarian: {schemas.CategoryMeat, schemas.CategorySeafood},
	schemas.RestrictionVegan: {schemas.CategoryMeat, schemas.CategorySeafood, schemas.CategoryDairy,
		schemas.CategoryEggs, schemas.CategoryHoney},
	schemas.RestrictionGlutenFree: {schemas.CategoryGluten},
	schemas.RestrictionLowSodium:  {schemas.CategoryHighSodium},
	schemas.RestrictionKeto:       {schemas.CategoryHighCarb},
}

// RestrictionCategories returns the categories a dietary restriction excludes, and false
// for an unknown restriction. "none" excludes nothing.
func RestrictionCategories(restriction string) ([]string, bool) {
	if restriction == schemas.RestrictionNone {
		return nil, true
	}
	cats, ok := restrictionCategories[restriction]
	return slices.Clone(cats), ok
}

// match is one taxonomy phrase found in an ingredient line, tokens [start, end).
type match struct {
	start, end int
	term       *term
	negated    bool   // "egg-free", "no salt": the phrase is there but denied
	cats       catSet // term.cats minus what the line's qualifiers cancel; 0 if negated
}

// analysis is an ingredient line as the engine sees it.
type analysis struct {
	toks    []string
	matches []match // the selected (non-overlapping) phrases, in line order
	quals   []*qualifier
}

// cats is the union of the line's effective categories.
func (a analysis) cats() catSet {
	var s catSet
	for _, m := range a.matches {
		s |= m.cats
	}
	return s
}

// negators deny the phrase right after them; "free" denies the phrase right before it.
var negators = setOf("no", "without", "non")

// analyze finds the taxonomy phrases of one ingredient line. Among overlapping phrases
// the longest wins (a listed compound overrides its parts), then the rightmost (the head
// noun), so the result does not depend on taxonomy order.
func (e *Engine) analyze(name string) analysis {
	a := analysis{toks: tokens(name)}
	var cands []match
	for i, w := range a.toks {
		for _, t := range e.byFirst[w] {
			if i+len(t.toks) <= len(a.toks) && slices.Equal(a.toks[i:i+len(t.toks)], t.toks) {
				cands = append(cands, match{start: i, end: i + len(t.toks), term: t})
			}
		}
	}
	slices.SortStableFunc(cands, func(x, y match) int {
		if d := (y.end - y.start) - (x.end - x.start); d != 0 {
			return d
		}
		return y.end - x.end
	})
	taken := make([]bool, len(a.toks))
	for _, c := range cands {
		if slices.Contains(taken[c.start:c.end], true) {
			continue
		}
		for i := c.start; i < c.end; i++ {
			taken[i] = true
		}
		c.negated = (c.end < len(a.toks) && a.toks[c.end] == "free") ||
			(c.start > 0 && negators[a.toks[c.start-1]])
		a.matches = append(a.matches, c)
	}
	slices.SortFunc(a.matches, func(x, y match) int { return x.start - y.start })

	for i := range e.qualifiers {
		q := &e.qualifiers[i]
		if slices.ContainsFunc(q.phrases, func(p []string) bool { return containsPhrase(a.toks, p) }) {
			a.quals = append(a.quals, q)
		}
	}
	for i := range a.matches {
		m := &a.matches[i]
		if !m.negated {
			m.cats = m.term.cats &^ cancelled(a.quals, m.term)
		}
	}
	return a
}

// cancelled is what a line's qualifiers cancel for one of its terms.
func cancelled(quals []*qualifier, t *term) catSet {
	var s catSet
	for _, q := range quals {
		if q.only == nil || q.only[t.key] {
			s |= q.cancels
		}
	}
	return s
}

// containsPhrase reports whether p occurs in toks as consecutive words.
func containsPhrase(toks, p []string) bool { return indexPhrase(toks, p, 0) >= 0 }

// indexPhrase returns the first position >= from where p occurs in toks, or -1.
func indexPhrase(toks, p []string, from int) int {
	for i := from; i+len(p) <= len(toks); i++ {
		if slices.Equal(toks[i:i+len(p)], p) {
			return i
		}
	}
	return -1
}

// Categories returns the taxonomy categories of one ingredient line, in canonical order:
// Categories("egg noodles") = [eggs gluten high_carb], Categories("coconut milk") = [].
func (e *Engine) Categories(ingredient string) []string {
	return e.analyze(ingredient).cats().names()
}

// forbiddenEntry is a persona's forbidden_ingredients entry prepared for matching.
type forbiddenEntry struct {
	entry    string // as written, reported in violations
	category catSet // non-zero when the entry is a category name
	plain    analysis
	cats     catSet // categories of a plain name (before qualifiers)
}

func (e *Engine) prepareForbidden(entry string) forbiddenEntry {
	f := forbiddenEntry{entry: strings.TrimSpace(entry)}
	if b, ok := categoryBit(strings.ToLower(f.entry)); ok {
		f.category = b
		return f
	}
	f.plain = e.analyze(f.entry)
	for _, m := range f.plain.matches {
		f.cats |= m.term.cats
	}
	return f
}

// matchesPlain reports whether a plain-name forbidden entry occurs in an ingredient line.
// The name must occur as whole words and not be negated ("soy-sauce-free"). It is hidden
// by a longer phrase that shares none of its categories ("butter" in "peanut butter",
// "rice" in "cauliflower rice"; but "rice" and "noodles" both count in "rice noodles",
// which share high_carb with them), and cleared by qualifiers only
// when they cancel all its categories ("vegan cheese" for "cheese"; "low-sodium soy sauce"
// still counts as "soy sauce", because its gluten is left).
func (e *Engine) matchesPlain(a analysis, f forbiddenEntry) bool {
	n := len(f.plain.toks)
	if n == 0 {
		return false
	}
	for s := indexPhrase(a.toks, f.plain.toks, 0); s >= 0; s = indexPhrase(a.toks, f.plain.toks, s+1) {
		end := s + n
		if (end < len(a.toks) && a.toks[end] == "free") || (s > 0 && negators[a.toks[s-1]]) {
			continue
		}
		if f.cats != 0 {
			i := slices.IndexFunc(a.matches, func(m match) bool { return m.start <= s && m.end >= end })
			if i >= 0 && a.matches[i].end-a.matches[i].start > n && a.matches[i].term.cats&f.cats == 0 {
				continue
			}
			var left catSet
			for _, m := range f.plain.matches {
				left |= m.term.cats &^ cancelled(a.quals, m.term)
			}
			if left == 0 {
				continue
			}
		}
		return true
	}
	return false
}

// Check returns every hard constraint the recipe's ingredients break for the persona.
// See CheckIngredients for the order.
func (e *Engine) Check(r schemas.Recipe, p schemas.Persona) []Violation {
	return e.CheckIngredients(r.IngredientNames(), p)
}

// CheckIngredients checks ingredient names against the persona's dietary restrictions and
// forbidden ingredients. Violations come in ingredient order; within one ingredient,
// restrictions in persona order (each in category order), then forbidden entries in
// persona order. Identical violations (a repeated ingredient line) are reported once, and
// unknown restriction names are ignored: personas are validated by
// schemas.ParsePersonas before they reach the engine.
func (e *Engine) CheckIngredients(names []string, p schemas.Persona) []Violation {
	forbidden := make([]forbiddenEntry, 0, len(p.ForbiddenIngredients))
	for _, f := range p.ForbiddenIngredients {
		if strings.TrimSpace(f) != "" {
			forbidden = append(forbidden, e.prepareForbidden(f))
		}
	}
	var out []Violation
	seen := map[Violation]bool{}
	add := func(v Violation) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		a := e.analyze(name)
		cats := a.cats()
		for _, r := range p.DietaryRestrictions {
			for _, c := range restrictionCategories[r] {
				if b, _ := categoryBit(c); cats&b != 0 {
					add(Violation{Constraint: r, Category: c, Ingredient: name})
				}
			}
		}
		for _, f := range forbidden {
			if (f.category != 0 && cats&f.category != 0) || (f.category == 0 && e.matchesPlain(a, f)) {
				add(Violation{Constraint: ConstraintForbidden, Category: f.entry, Ingredient: name})
			}
		}
	}
	return out
}

// Violates reports whether a single ingredient breaks any of the persona's constraints:
// the test used to build pantries with (or without) a forbidden item.
func (e *Engine) Violates(ingredient string, p schemas.Persona) bool {
	return len(e.CheckIngredients([]string{ingredient}, p)) > 0
}

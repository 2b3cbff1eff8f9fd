package sftcorpus

import (
	"math/rand/v2"
	"slices"
	"strings"
)

// Short requests. The lexicon's templates (transforms/prompts) always list a full pantry;
// these cover the other requests users make, with one or two items or none. They are
// persona-neutral like the lexicon's (TestRequestsNeutral) and worded differently from the
// evaluation's edge cases, so the evaluation still measures generalisation.
var (
	shortTemplates = []string{
		"What can I make with only {items}?",
		"All I have is {items}. Any ideas?",
		"Cook something with {items}, please.",
		"Quick idea for {items}?",
	}
	openTemplates = []string{
		"What should I cook tonight?",
		"Suggest something for dinner.",
		"I need a dinner idea.",
		"Give me a recipe for tonight.",
	}
)

// shortRequest keeps the first zero (a quarter of the time), one or two items of a pantry
// (already in random order) and words a short request for them.
func shortRequest(rng *rand.Rand, pantry []string) (string, []string) {
	k := 1 + rng.IntN(2)
	if rng.Float64() < 0.25 || len(pantry) == 0 {
		k = 0
	}
	k = min(k, len(pantry))
	if k == 0 {
		return openTemplates[rng.IntN(len(openTemplates))], nil
	}
	items := slices.Clone(pantry[:k])
	t := shortTemplates[rng.IntN(len(shortTemplates))]
	return strings.ReplaceAll(t, "{items}", joinAnd(items)), items
}

// Package prompts makes the recipe requests the data-preparation job starts from: a
// deterministic generator that draws pantries from a cuisine lexicon (lexicon.yaml), and
// a JSONL reader/writer for prompt files.
//
// Requests are persona-neutral ("I have tofu, kimchi, and scallions. What can I cook
// tonight?"): the persona's needs live in variant A's system prompt and, after training,
// in its adapter, never in the request. A fixed share of a restricted persona's prompts
// deliberately put a forbidden ingredient in the pantry, so the preference data teaches
// the model to leave it out rather than to cook whatever it is given.
package prompts

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// DefaultForbiddenShare is the share of a restricted persona's prompts whose pantry holds
// one or two forbidden ingredients. 30% matches the seed's constraint-stress share of
// evaluation cases (6 of 20), enough pairs to learn refusal-by-substitution without
// making most requests adversarial.
const DefaultForbiddenShare = 0.3

// Pantry sizes and mix.
const (
	minPantry = 4
	maxPantry = 7
	// primaryShare of the non-forbidden items come from the persona's first cuisine and
	// preferred ingredients; the rest from its other cuisines and the staples.
	primaryShare = 0.75
	// twoForbiddenShare of forbidden prompts carry two forbidden items instead of one.
	twoForbiddenShare = 1.0 / 3
)

// Generator draws prompts from a lexicon, using the rules engine to tell which pantry
// items a persona may eat.
type Generator struct {
	// Lexicon must pass Lexicon.Validate (at least one template).
	Lexicon Lexicon
	// Engine judges pantry items; nil means rules.New().
	Engine *rules.Engine
	// ForbiddenShare is the share (0–1) of a restricted persona's prompts that include a
	// forbidden ingredient; DefaultForbiddenShare unless changed.
	ForbiddenShare float64
}

// NewGenerator returns a generator over the embedded lexicon and the default rules engine.
func NewGenerator() *Generator {
	return &Generator{Lexicon: DefaultLexicon(), Engine: rules.New(), ForbiddenShare: DefaultForbiddenShare}
}

// Generate is NewGenerator().Generate.
func Generate(p schemas.Persona, n int, seed int64) []schemas.Prompt {
	return NewGenerator().Generate(p, n, seed)
}

// Generate returns n prompts for the persona, deterministically for (persona id, lexicon,
// n, seed). Prompt i draws from its own PCG stream seeded from seed, an FNV hash of the
// persona id and i, so Generate(p, 100, s) is a prefix of Generate(p, 500, s) and a
// persona's prompts do not change when another persona is added.
//
// Each pantry has 4–7 items, mostly from the persona's first cuisine and preferred
// ingredients, all allowed for the persona, except that a ForbiddenShare of the prompts
// of a restricted persona replace one or two of them by ingredients that break its
// constraints (IncludesForbidden). Which prompts those are follows a Beatty sequence
// with a seeded phase: every prefix of the list holds the share to within one prompt,
// rather than only on average. Items that name a diet ("gluten-free pasta") are never
// drawn, so requests stay persona-neutral. PromptIDs are "<persona id>-NNNNN", from 0.
func (g *Generator) Generate(p schemas.Persona, n int, seed int64) []schemas.Prompt {
	if n <= 0 {
		return nil
	}
	pools := g.pools(p)
	share := math.Min(1, math.Max(0, g.ForbiddenShare))
	canForbid := p.Restricted() && len(pools.forbidden) > 0 && share > 0

	h := hashID(p.ID)
	base := splitmix64(uint64(seed)) ^ h
	phase := rand.New(rand.NewPCG(base, h)).Float64()

	out := make([]schemas.Prompt, n)
	for i := range n {
		rng := rand.New(rand.NewPCG(splitmix64(base+uint64(i)), splitmix64(h^(uint64(i)*0x9e3779b97f4a7c15))))
		forbid := canForbid && math.Floor(float64(i+1)*share+phase) > math.Floor(float64(i)*share+phase)
		pantry := pools.draw(rng, forbid)
		out[i] = schemas.Prompt{
			PromptID:          fmt.Sprintf("%s-%05d", p.ID, i),
			PersonaID:         p.ID,
			Request:           g.request(rng, p, pantry),
			Pantry:            pantry,
			IncludesForbidden: forbid,
		}
	}
	return out
}

// pools are a persona's candidate pantry items.
type pools struct {
	primary, secondary []string // allowed for the persona
	forbidden          []string // break one of its constraints; primary cuisine first
}

// pools splits the lexicon for a persona. Order is lexicon order, so draws are stable.
func (g *Generator) pools(p schemas.Persona) pools {
	var primaryItems, secondaryItems []string
	if len(p.Cuisines) > 0 {
		primaryItems = append(primaryItems, p.PreferredIngredients...)
		primaryItems = append(primaryItems, g.Lexicon.Cuisines[strings.ToLower(p.Cuisines[0])]...)
		for _, c := range p.Cuisines[1:] {
			secondaryItems = append(secondaryItems, g.Lexicon.Cuisines[strings.ToLower(c)]...)
		}
	} else {
		primaryItems = append(primaryItems, p.PreferredIngredients...)
	}
	secondaryItems = append(secondaryItems, g.Lexicon.Staples...)

	eng := g.Engine
	if eng == nil {
		eng = rules.New()
	}
	var ps pools
	var fPrimary, fSecondary []string
	seen := map[string]bool{}
	for i, items := range [][]string{primaryItems, secondaryItems} {
		for _, it := range items {
			key := rules.Normalize(it)
			if key == "" || seen[key] || !IsNeutral(it) {
				continue
			}
			seen[key] = true
			bad := eng.Violates(it, p)
			switch {
			case bad && i == 0:
				fPrimary = append(fPrimary, it)
			case bad:
				fSecondary = append(fSecondary, it)
			case i == 0:
				ps.primary = append(ps.primary, it)
			default:
				ps.secondary = append(ps.secondary, it)
			}
		}
	}
	// Forbidden items come from the persona's own cuisine when it has any, so the trap is
	// realistic (chicken in an Indian pantry); the staples are the fallback.
	ps.forbidden = fPrimary
	if len(ps.forbidden) == 0 {
		ps.forbidden = fSecondary
	}
	return ps
}

// draw picks one pantry. Items are distinct; order is shuffled so a forbidden item is not
// always in the same place.
func (ps pools) draw(rng *rand.Rand, forbid bool) []string {
	size := minPantry + rng.IntN(maxPantry-minPantry+1)
	primary, secondary := clone(ps.primary), clone(ps.secondary)
	var pantry []string
	if forbid {
		k := 1
		if len(ps.forbidden) > 1 && rng.Float64() < twoForbiddenShare {
			k = 2
		}
		f := clone(ps.forbidden)
		for range k {
			pantry = append(pantry, take(rng, &f))
		}
	}
	for len(pantry) < size && len(primary)+len(secondary) > 0 {
		if len(secondary) == 0 || (len(primary) > 0 && rng.Float64() < primaryShare) {
			pantry = append(pantry, take(rng, &primary))
		} else {
			pantry = append(pantry, take(rng, &secondary))
		}
	}
	rng.Shuffle(len(pantry), func(i, j int) { pantry[i], pantry[j] = pantry[j], pantry[i] })
	return pantry
}

// take removes and returns a random element of *s (which must be non-empty).
func take(rng *rand.Rand, s *[]string) string {
	i := rng.IntN(len(*s))
	v := (*s)[i]
	(*s)[i] = (*s)[len(*s)-1]
	*s = (*s)[:len(*s)-1]
	return v
}

func clone(s []string) []string { return append([]string(nil), s...) }

// request fills a random template.
func (g *Generator) request(rng *rand.Rand, p schemas.Persona, pantry []string) string {
	t := g.Lexicon.Templates[rng.IntN(len(g.Lexicon.Templates))]
	cuisine := "home-style"
	if len(p.Cuisines) > 0 && strings.TrimSpace(p.Cuisines[0]) != "" {
		cuisine = strings.TrimSpace(p.Cuisines[0])
	}
	// "a Indian dinner" reads as a bug to a model and a reviewer alike.
	article := "a"
	if strings.ContainsRune("AEIOUaeiou", []rune(cuisine)[0]) {
		article = "an"
	}
	return strings.NewReplacer(
		"{items}", joinItems(pantry),
		" a {cuisine}", " "+article+" "+cuisine, // tried before the plain form below
		"{cuisine}", cuisine,
	).Replace(t)
}

// joinItems lists items the way people write them: "a", "a and b", "a, b, and c".
func joinItems(items []string) string {
	switch len(items) {
	case 0:
		return "whatever I have"
	case 1:
		return items[0]
	case 2:
		return items[0] + " and " + items[1]
	}
	return strings.Join(items[:len(items)-1], ", ") + ", and " + items[len(items)-1]
}

// hashID is the FNV-1a hash of a persona id: stable across processes and Go versions,
// unlike hash/maphash.
func hashID(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// splitmix64 scrambles a seed so nearby inputs (prompt i and i+1) give unrelated PCG
// states.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Package sftcorpus makes the synthetic supervised fine-tuning corpus of the offline demo's
// tiny SFT model: ChatML recipe requests answered with compact Recipe JSON, built from the
// pantry lexicon (transforms/prompts) and the dietary rules (transforms/rules).
//
// The corpus is deliberately imperfect. A model trained on it should answer every request
// with a valid recipe, but follow a persona's hard constraints only as often as a real
// instruction-tuned model would: usually when the system prompt spells them out
// (chatml.StrongSystem, variant A), much less often when it does not (chatml.WeakSystem,
// variant B, and chatml.NeutralSystem, the prompt DPO and evaluation use). When a pantry
// holds an item the persona must not eat, a "compliant" answer replaces it in place with a
// substitute from a fixed table (substitute.go); a non-compliant one cooks it. That gap is
// what the preference data of beam/prepare captures and DPO then closes.
//
// The system prompt also shapes the soft criteria the rules judge scores, as it would with a
// real model: with the persona spelled out, recipes add its preferred ingredients and name a
// flavour note in the title; with only a cuisine hint, they add that cuisine's seasonings;
// with the neutral prompt, plain kitchen staples.
//
// Corpus layout for the trainer: WriteShards writes DPOExample rows under one pseudo-persona,
// CorpusID, so that
//
//	trainer train --mode sft --persona sft_corpus --data_root <corpus root> ...
//
// trains one model on every persona's examples; Texts feeds `trainer tokenizer train`.
package sftcorpus

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/prompts"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// Version identifies the generator's output: bump it whenever the same (personas, n, seed,
// Options) would give a different corpus, so caches of models trained on it (the demo's SFT
// model) are rebuilt.
const Version = "1"

// SystemKind names the system prompt an example was drawn with.
type SystemKind string

// The three system prompts of the pipeline (transforms/chatml).
const (
	// SystemStrong is chatml.StrongSystem(persona): variant A, constraints spelled out.
	SystemStrong SystemKind = "strong"
	// SystemWeak is chatml.WeakSystem(persona): variant B, a cuisine hint only.
	SystemWeak SystemKind = "weak"
	// SystemNeutral is chatml.NeutralSystem: what DPO examples store by default and what
	// evaluation prompts with.
	SystemNeutral SystemKind = "neutral"
)

// SystemKinds lists the kinds in report order.
func SystemKinds() []SystemKind { return []SystemKind{SystemStrong, SystemWeak, SystemNeutral} }

// Defaults of Options. Compliance is the probability that a recipe for a request whose
// pantry holds a forbidden item leaves it out; the gap between the strong prompt and the
// other two is the signal DPO learns from.
const (
	// The neutral prompt gets the largest share because the tiny model is prompted with it
	// at evaluation and it is the prompt of every DPO example; the strong and weak prompts
	// are what beam/prepare generates variants A and B with.
	DefaultStrongShare  = 0.35
	DefaultWeakShare    = 0.25
	DefaultNeutralShare = 0.40

	DefaultStrongCompliance  = 0.85
	DefaultWeakCompliance    = 0.45
	DefaultNeutralCompliance = 0.45

	// DefaultShortShare of the requests are short: one or two pantry items, or none at all
	// ("What should I cook tonight?"), like the evaluation's edge cases. The lexicon's
	// requests always list 4–7 items, and a tiny model does not generalise to shorter ones
	// on its own.
	DefaultShortShare = 0.12
)

// Options are the corpus's parameters. JSON names match the Validate messages, so the
// options can be recorded (or hashed into a cache key) as they are.
type Options struct {
	// Shares of the system prompts, each in [0, 1], summing to 1.
	StrongShare  float64 `json:"strong_share"`
	WeakShare    float64 `json:"weak_share"`
	NeutralShare float64 `json:"neutral_share"`
	// Probabilities, in [0, 1], that a recipe leaves out the forbidden items of its pantry,
	// by system prompt.
	StrongCompliance  float64 `json:"strong_compliance"`
	WeakCompliance    float64 `json:"weak_compliance"`
	NeutralCompliance float64 `json:"neutral_compliance"`
	// ForbiddenShare is the share of a restricted persona's requests whose pantry includes
	// a forbidden item (prompts.Generator.ForbiddenShare).
	ForbiddenShare float64 `json:"forbidden_share"`
	// ShortShare is the share of short requests (see DefaultShortShare).
	ShortShare float64 `json:"short_share"`
	// Engine judges ingredients; nil means rules.New().
	Engine *rules.Engine `json:"-"`
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{
		StrongShare: DefaultStrongShare, WeakShare: DefaultWeakShare, NeutralShare: DefaultNeutralShare,
		StrongCompliance: DefaultStrongCompliance, WeakCompliance: DefaultWeakCompliance,
		NeutralCompliance: DefaultNeutralCompliance,
		ForbiddenShare:    prompts.DefaultForbiddenShare,
		ShortShare:        DefaultShortShare,
	}
}

// Validate reports every out-of-range option.
func (o Options) Validate() error {
	var errs []error
	for _, x := range []struct {
		name string
		v    float64
	}{
		{"strong_share", o.StrongShare}, {"weak_share", o.WeakShare}, {"neutral_share", o.NeutralShare},
		{"strong_compliance", o.StrongCompliance}, {"weak_compliance", o.WeakCompliance},
		{"neutral_compliance", o.NeutralCompliance}, {"forbidden_share", o.ForbiddenShare},
		{"short_share", o.ShortShare},
	} {
		if !(x.v >= 0 && x.v <= 1) { // negated so NaN fails
			errs = append(errs, fmt.Errorf("sftcorpus: %s (%g) must be in [0, 1]", x.name, x.v))
		}
	}
	if sum := o.StrongShare + o.WeakShare + o.NeutralShare; math.Abs(sum-1) > 1e-9 {
		errs = append(errs, fmt.Errorf("sftcorpus: strong_share + weak_share + neutral_share = %g, want 1", sum))
	}
	return errors.Join(errs...)
}

// compliance returns the configured compliance of a system kind.
func (o Options) compliance(k SystemKind) float64 {
	switch k {
	case SystemStrong:
		return o.StrongCompliance
	case SystemWeak:
		return o.WeakCompliance
	}
	return o.NeutralCompliance
}

// Example is one corpus example: a ChatML request and the recipe that answers it.
type Example struct {
	// ID is the request's prompt id, "<persona id>-NNNNN"; unique across personas.
	ID        string
	PersonaID string
	Kind      SystemKind
	System    string // the system prompt of Kind for the persona
	User      string // the persona-neutral request
	// Pantry is what the request names (empty for an open request).
	Pantry []string
	// Forbidden lists the pantry items the persona must not eat, in pantry order.
	Forbidden []string
	// Complied says the recipe left Forbidden out (replacing each by a substitute where the
	// table has one). It is true when Forbidden is empty.
	Complied bool
	Recipe   schemas.Recipe
	// Text is Recipe.CanonicalJSON(): the assistant's answer.
	Text string
}

// Prompt is the example's ChatML prompt, ending with the open assistant turn.
func (e Example) Prompt() string { return chatml.Prompt(e.System, e.User) }

// Completion is the example's training completion: the recipe JSON and <|im_end|>.
func (e Example) Completion() string { return chatml.Completion(e.Text) }

// Generate returns n examples per persona, persona by persona in the given order, then by
// index. It is deterministic for (personas, n, seed, opts), and example i of a persona does
// not depend on n or on the other personas, so a larger corpus extends a smaller one.
//
// Requests come from prompts.Generator.Generate with a seed derived from seed and a salt,
// so a corpus and a data-preparation run with the same --seed do not share requests. A
// ShortShare of them are cut to one or two items of their pantry, or to none, and reworded
// with the short templates of this package.
//
// Generate panics if opts.Validate fails: options are code, checked where flags are parsed.
func Generate(personas []schemas.Persona, n int, seed int64, opts Options) []Example {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	eng := opts.Engine
	if eng == nil {
		eng = rules.New()
	}
	gen := prompts.NewGenerator()
	gen.Engine = eng
	gen.ForbiddenShare = opts.ForbiddenShare
	promptSeed := int64(splitmix64(uint64(seed) ^ hashString("sftcorpus/prompts")))

	var out []Example
	for _, p := range personas {
		b := newBuilder(p, eng)
		h := hashString(p.ID)
		base := splitmix64(uint64(seed)^hashString("sftcorpus/examples")) ^ h
		for i, pr := range gen.Generate(p, n, promptSeed) {
			rng := rand.New(rand.NewPCG(splitmix64(base+uint64(i)), splitmix64(h^(uint64(i)*0x9e3779b97f4a7c15))))
			out = append(out, b.example(rng, pr, opts))
		}
	}
	return out
}

// example turns one generated prompt into an example. The draws happen in a fixed order,
// so the example depends only on the prompt and the rng.
func (b *builder) example(rng *rand.Rand, pr schemas.Prompt, opts Options) Example {
	kind := SystemNeutral
	switch u := rng.Float64(); {
	case u < opts.StrongShare:
		kind = SystemStrong
	case u < opts.StrongShare+opts.WeakShare:
		kind = SystemWeak
	}
	user, pantry := pr.Request, pr.Pantry
	if rng.Float64() < opts.ShortShare {
		user, pantry = shortRequest(rng, pantry)
	}
	var forbidden []string
	for _, it := range pantry {
		if b.eng.Violates(it, b.p) {
			forbidden = append(forbidden, it)
		}
	}
	comply := rng.Float64() < opts.compliance(kind) || len(forbidden) == 0
	r := b.recipe(rng, kind, user, pantry, comply)
	return Example{
		ID: pr.PromptID, PersonaID: b.p.ID, Kind: kind, System: b.system(kind), User: user,
		Pantry: pantry, Forbidden: forbidden, Complied: comply, Recipe: r, Text: r.CanonicalJSON(),
	}
}

// system returns the system prompt of a kind for the builder's persona.
func (b *builder) system(k SystemKind) string {
	switch k {
	case SystemStrong:
		return chatml.StrongSystem(b.p)
	case SystemWeak:
		return chatml.WeakSystem(b.p)
	}
	return chatml.NeutralSystem
}

// hashString is the FNV-1a hash of s: stable across processes and Go versions.
func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// splitmix64 scrambles a seed so nearby inputs give unrelated PCG states.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

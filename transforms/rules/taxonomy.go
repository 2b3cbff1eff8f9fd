package rules

import (
	"bytes"
	_ "embed"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"gopkg.in/yaml.v3"
)

// taxonomyYAML is the default taxonomy: readable data, reviewed like code.
//
//go:embed taxonomy.yaml
var taxonomyYAML []byte

// TaxonomyYAML returns a copy of the embedded default taxonomy, for tools that print or
// extend it.
func TaxonomyYAML() []byte { return bytes.Clone(taxonomyYAML) }

// catSet is a set of categories, one bit per schemas.Categories() entry, in that order, so
// set iteration is the canonical report order.
type catSet uint16

var categoryNames = schemas.Categories()

// categoryBit returns the bit of a category name.
func categoryBit(name string) (catSet, bool) {
	i := slices.Index(categoryNames, name)
	if i < 0 {
		return 0, false
	}
	return 1 << i, true
}

// names lists the categories of s in canonical order.
func (s catSet) names() []string {
	out := make([]string, 0, bits.OnesCount16(uint16(s)))
	for i, n := range categoryNames {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// term is one taxonomy phrase.
type term struct {
	key  string   // normalised phrase
	toks []string // key split into words
	cats catSet
}

// qualifier cancels categories of the terms on the same ingredient line.
type qualifier struct {
	phrases [][]string
	cancels catSet
	only    map[string]bool // term keys it applies to; nil means all
}

// taxonomyFile is the shape of taxonomy.yaml.
type taxonomyFile struct {
	Terms      map[string][]string `yaml:"terms"`
	Qualifiers []struct {
		Phrases []string `yaml:"phrases"`
		Cancels []string `yaml:"cancels"`
		Only    []string `yaml:"only"`
	} `yaml:"qualifiers"`
}

// Engine is the dietary-rules engine: an ingredient taxonomy plus the matching rules.
// It is immutable once built and safe for concurrent use.
type Engine struct {
	terms      map[string]*term   // by key
	byFirst    map[string][]*term // by first word, longest phrase first
	qualifiers []qualifier
}

// defaultEngine parses the embedded taxonomy once; every New shares it.
var defaultEngine = sync.OnceValue(func() *Engine {
	e, err := NewFromYAML(taxonomyYAML)
	if err != nil {
		panic(fmt.Sprintf("rules: embedded taxonomy.yaml: %v", err)) // caught by the package tests
	}
	return e
})

// New returns the engine built from the embedded taxonomy.yaml. It is shared: the
// taxonomy is parsed on first use only.
func New() *Engine { return defaultEngine() }

// NewFromYAML builds an engine from a taxonomy in the format of taxonomy.yaml. Every
// category must be one of schemas.Categories(), phrases must not collide once
// normalised, and a qualifier's `only` terms must exist.
func NewFromYAML(data []byte) (*Engine, error) {
	var f taxonomyFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("taxonomy: %w", err)
	}
	e := &Engine{terms: map[string]*term{}, byFirst: map[string][]*term{}}

	keys := make([]string, 0, len(f.Terms))
	for k := range f.Terms {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic error messages
	for _, k := range keys {
		toks := tokens(k)
		if len(toks) == 0 {
			return nil, fmt.Errorf("taxonomy: term %q is empty once normalised", k)
		}
		cats, err := parseCats(f.Terms[k])
		if err != nil {
			return nil, fmt.Errorf("taxonomy: term %q: %w", k, err)
		}
		key := strings.Join(toks, " ")
		if _, dup := e.terms[key]; dup {
			return nil, fmt.Errorf("taxonomy: term %q normalises to %q, which is already listed", k, key)
		}
		t := &term{key: key, toks: toks, cats: cats}
		e.terms[key] = t
		e.byFirst[toks[0]] = append(e.byFirst[toks[0]], t)
	}
	for _, ts := range e.byFirst {
		slices.SortFunc(ts, func(a, b *term) int { return len(b.toks) - len(a.toks) })
	}

	for i, q := range f.Qualifiers {
		cancels, err := parseCats(q.Cancels)
		switch {
		case err != nil:
			return nil, fmt.Errorf("taxonomy: qualifier %d %v: %w", i, q.Phrases, err)
		case cancels == 0 || len(q.Phrases) == 0:
			return nil, fmt.Errorf("taxonomy: qualifier %d %v: needs phrases and cancels", i, q.Phrases)
		}
		nq := qualifier{cancels: cancels}
		for _, p := range q.Phrases {
			toks := tokens(p)
			if len(toks) == 0 {
				return nil, fmt.Errorf("taxonomy: qualifier %d: phrase %q is empty once normalised", i, p)
			}
			nq.phrases = append(nq.phrases, toks)
		}
		if len(q.Only) > 0 {
			nq.only = map[string]bool{}
			for _, o := range q.Only {
				key := Normalize(o)
				if e.terms[key] == nil {
					return nil, fmt.Errorf("taxonomy: qualifier %v: only-term %q is not a term", q.Phrases, o)
				}
				nq.only[key] = true
			}
		}
		e.qualifiers = append(e.qualifiers, nq)
	}
	return e, nil
}

// parseCats turns category names into a set, rejecting unknown names.
func parseCats(names []string) (catSet, error) {
	var s catSet
	for _, n := range names {
		b, ok := categoryBit(n)
		if !ok {
			return 0, fmt.Errorf("unknown category %q (known: %s)", n, strings.Join(categoryNames, ", "))
		}
		s |= b
	}
	return s, nil
}

// termCount reports how many phrases a category has.
func (e *Engine) termCount(category string) int {
	b, ok := categoryBit(category)
	if !ok {
		return 0
	}
	n := 0
	for _, t := range e.terms {
		if t.cats&b != 0 {
			n++
		}
	}
	return n
}

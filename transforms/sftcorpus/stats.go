package sftcorpus

import (
	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// KindStats are the measured numbers of one system prompt kind.
type KindStats struct {
	Examples int `json:"examples"`
	// WithForbidden counts examples whose pantry holds an item the persona must not eat;
	// Compliant those of them whose recipe breaks none of the persona's constraints.
	WithForbidden int `json:"with_forbidden"`
	Compliant     int `json:"compliant"`
}

// ComplianceRate is Compliant / WithForbidden, or 1 when no example had a forbidden item.
func (k KindStats) ComplianceRate() float64 {
	if k.WithForbidden == 0 {
		return 1
	}
	return float64(k.Compliant) / float64(k.WithForbidden)
}

// Stats describe a corpus, measured with the rules engine rather than read from the
// examples' own flags, so they can be logged as evidence of what a model will learn.
type Stats struct {
	Examples int                       `json:"examples"`
	ByKind   map[SystemKind]*KindStats `json:"by_kind"`
	// MaxJSONBytes is the longest recipe JSON.
	MaxJSONBytes int `json:"max_json_bytes"`
}

// Measure computes Stats. Examples of personas missing from personas are counted but not
// checked for compliance.
func Measure(exs []Example, personas []schemas.Persona, eng *rules.Engine) Stats {
	if eng == nil {
		eng = rules.New()
	}
	byID := map[string]schemas.Persona{}
	for _, p := range personas {
		byID[p.ID] = p
	}
	st := Stats{ByKind: map[SystemKind]*KindStats{}}
	for _, k := range SystemKinds() {
		st.ByKind[k] = &KindStats{}
	}
	for _, e := range exs {
		st.Examples++
		st.MaxJSONBytes = max(st.MaxJSONBytes, len(e.Text))
		ks := st.ByKind[e.Kind]
		if ks == nil {
			ks = &KindStats{}
			st.ByKind[e.Kind] = ks
		}
		ks.Examples++
		p, ok := byID[e.PersonaID]
		if !ok || len(eng.CheckIngredients(e.Pantry, p)) == 0 {
			continue
		}
		ks.WithForbidden++
		if len(eng.Check(e.Recipe, p)) == 0 {
			ks.Compliant++
		}
	}
	return st
}

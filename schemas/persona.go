package schemas

// Persona is one user archetype of personas.yaml (PIPELINE.md §2). Restrictions and
// forbidden ingredients are hard constraints checked by the dietary-rules engine
// (transforms/rules); cuisines, preferred ingredients and flavour notes are soft preferences.
type Persona struct {
	ID          string   `yaml:"id" json:"id"`
	Name        string   `yaml:"name" json:"name"`
	Description string   `yaml:"description" json:"description"`
	Cuisines    []string `yaml:"cuisines" json:"cuisines"`
	// DietaryRestrictions are names from the rules engine's vocabulary: vegetarian, vegan,
	// gluten_free, low_sodium, keto; or the single value "none", which states on purpose
	// that the persona has no restriction.
	DietaryRestrictions []string `yaml:"dietary_restrictions" json:"dietary_restrictions"`
	// ForbiddenIngredients are taxonomy categories ("meat", "gluten") or plain ingredient
	// names ("soy sauce") the persona must never be served.
	ForbiddenIngredients []string `yaml:"forbidden_ingredients" json:"forbidden_ingredients"`
	PreferredIngredients []string `yaml:"preferred_ingredients" json:"preferred_ingredients"`
	FlavorNotes          []string `yaml:"flavor_notes" json:"flavor_notes"`
}

// RestrictionNone is the explicit "no dietary restriction" value.
const RestrictionNone = "none"

// Restricted reports whether the persona has any dietary restriction or forbidden ingredient.
func (p Persona) Restricted() bool {
	if len(p.ForbiddenIngredients) > 0 {
		return true
	}
	for _, r := range p.DietaryRestrictions {
		if r != RestrictionNone {
			return true
		}
	}
	return false
}

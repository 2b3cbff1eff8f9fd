package schemas

import "slices"

// Dietary-restriction names a persona may list in dietary_restrictions, besides
// RestrictionNone. They live here rather than in transforms/rules because the persona loader
// must reject unknown names and schemas imports nothing of the project; transforms/rules maps
// each of them to the ingredient categories it excludes.
const (
	RestrictionVegetarian = "vegetarian"
	RestrictionVegan      = "vegan"
	RestrictionGlutenFree = "gluten_free"
	RestrictionLowSodium  = "low_sodium"
	RestrictionKeto       = "keto"
)

// Ingredient categories of the dietary-rules taxonomy (transforms/rules). A persona's
// forbidden_ingredients entry that equals one of them means the whole category; any other
// entry is a plain ingredient name. Poultry is part of CategoryMeat, because no persona
// (and no common diet) forbids red meat but allows chicken, and a separate category would
// make every vegetarian persona list both.
const (
	CategoryMeat       = "meat"
	CategorySeafood    = "seafood"
	CategoryDairy      = "dairy"
	CategoryEggs       = "eggs"
	CategoryHoney      = "honey"
	CategoryGluten     = "gluten"
	CategoryHighSodium = "high_sodium"
	CategoryHighCarb   = "high_carb"
)

// restrictions and categories are kept in the order messages and rules output use.
var (
	restrictions = []string{RestrictionVegetarian, RestrictionVegan, RestrictionGlutenFree, RestrictionLowSodium, RestrictionKeto}
	categories   = []string{CategoryMeat, CategorySeafood, CategoryDairy, CategoryEggs, CategoryHoney, CategoryGluten, CategoryHighSodium, CategoryHighCarb}
)

// Restrictions returns the known dietary-restriction names (without RestrictionNone), in
// canonical order. It returns a fresh slice so callers cannot change the vocabulary.
func Restrictions() []string { return slices.Clone(restrictions) }

// Categories returns the taxonomy category names in canonical order (the order in which
// the rules engine reports violations). It returns a fresh slice.
func Categories() []string { return slices.Clone(categories) }

// IsRestriction reports whether name is a known dietary restriction other than "none".
func IsRestriction(name string) bool { return slices.Contains(restrictions, name) }

// IsCategory reports whether name is a taxonomy category name (exact, lower-case match).
func IsCategory(name string) bool { return slices.Contains(categories, name) }

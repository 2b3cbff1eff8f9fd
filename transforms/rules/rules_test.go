package rules

import (
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Tomatoes", "tomato"},
		{"2 cups jasmine rice", "jasmine rice"},
		{"1/2 lb chicken thighs, diced", "chicken thigh diced"},
		{"3 cloves garlic", "garlic"},
		{"1 tsp ground cloves", "ground clove"},
		{"2 tbsp of gochujang", "gochujang"},
		{"Jalapeños", "jalapeno"},
		{"Gluten-Free Tamari", "gluten free tamari"},
		{"anchovies", "anchovy"},
		{"radishes", "radish"},
		{"cheeses", "cheese"},
		{"glass noodles", "glass noodle"},
		{"couscous", "couscous"},
		{"sea bass", "sea bass"},
		{"bay leaves", "bay leaf"},
		{"red chilies", "red chili"},
		{"baker's yeast", "baker yeast"},
		{"100g paneer", "paneer"},
		{"2 large eggs", "egg"},
		{"  ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Normalize(tt.in); got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCategories(t *testing.T) {
	e := New()
	tests := []struct {
		in   string
		want []string
	}{
		// Plain members.
		{"chicken thigh", []string{"meat"}},
		{"2 lbs ground beef", []string{"meat"}},
		{"bulgogi beef", []string{"meat"}},
		{"gelatin", []string{"meat"}},
		{"shrimp", []string{"seafood"}},
		{"paneer", []string{"dairy"}},
		{"eggs", []string{"eggs"}},
		{"honey", []string{"honey", "high_carb"}},
		{"all-purpose flour", []string{"gluten", "high_carb"}},
		{"sea salt", []string{"high_sodium"}},
		{"jasmine rice", []string{"high_carb"}},
		// Not what the name suggests.
		{"coconut milk", nil},
		{"almond milk", nil},
		{"oat milk", nil},
		{"peanut butter", nil},
		{"cocoa butter", nil},
		{"butternut squash", nil},
		{"eggplant", nil},
		{"cream of tartar", nil},
		{"oyster mushrooms", nil},
		{"sugar snap peas", nil},
		{"spaghetti squash", nil},
		{"cauliflower rice", nil},
		{"rice vinegar", nil},
		{"shiitake mushrooms", nil},
		{"firm tofu", nil},
		{"bean sprouts", nil},
		{"mung bean sprouts", nil},
		{"green beans", nil},
		{"kombu dashi", nil},
		{"flax egg", nil},
		{"almond flour", nil},
		{"coconut aminos", nil},
		{"shirataki noodles", nil},
		{"garam masala", nil},
		{"duck sauce", []string{"high_carb"}},
		{"mock duck", []string{"gluten"}},
		{"quail eggs", []string{"eggs"}},
		// Qualifiers and negation.
		{"vegan cheese", nil},
		{"plant-based butter", nil},
		{"dairy-free cheese", nil},
		{"vegan mayonnaise", nil},
		{"egg-free noodles", []string{"gluten", "high_carb"}},
		{"gluten-free pasta", []string{"high_carb"}},
		{"gluten-free soy sauce", []string{"high_sodium"}},
		{"gluten-free tamari", []string{"high_sodium"}},
		{"tamari", []string{"gluten", "high_sodium"}},
		{"low-sodium soy sauce", []string{"gluten"}},
		{"reduced-sodium gluten-free tamari", nil},
		{"soy sauce", []string{"gluten", "high_sodium"}},
		{"vegetable stock", []string{"high_sodium"}},
		{"vegetable broth", []string{"high_sodium"}},
		{"low-sodium vegetable broth", nil},
		{"homemade vegetable stock", nil},
		{"chicken stock", []string{"meat", "high_sodium"}},
		{"homemade chicken stock", []string{"meat"}},
		{"unsalted butter", []string{"dairy"}},
		{"no salt added diced tomatoes", nil},
		{"sugar-free maple syrup", nil},
		{"sugar-free cookies", []string{"gluten", "high_carb"}},
		{"vegetarian oyster sauce", []string{"gluten", "high_sodium"}},
		{"vegan fish sauce", []string{"high_sodium"}},
		{"gluten-free oats", []string{"high_carb"}},
		{"vegan kimchi", []string{"high_sodium"}},
		{"low-carb tortillas", nil},
		// Several categories at once.
		{"egg noodles", []string{"eggs", "gluten", "high_carb"}},
		{"fish sauce", []string{"seafood", "high_sodium"}},
		{"oyster sauce", []string{"seafood", "gluten", "high_sodium"}},
		{"gochujang (Korean chili paste)", []string{"gluten", "high_sodium", "high_carb"}},
		{"kimchi", []string{"seafood", "high_sodium"}},
		{"bacon", []string{"meat", "high_sodium"}},
		{"parmesan", []string{"dairy", "high_sodium"}},
		{"custard", []string{"dairy", "eggs"}},
		// Carbs: gluten-free but not keto, and the judgement calls.
		{"rice noodles", []string{"high_carb"}},
		{"glass noodles", []string{"high_carb"}},
		{"rice paper", []string{"high_carb"}},
		{"corn tortillas", []string{"high_carb"}},
		{"flour tortillas", []string{"gluten", "high_carb"}},
		{"cornstarch", []string{"high_carb"}},
		{"corn flour", []string{"high_carb"}},
		{"baby corn", nil},
		{"black beans", []string{"high_carb"}},
		{"sweet potatoes", []string{"high_carb"}},
		{"buckwheat soba", []string{"gluten", "high_carb"}},
		{"chickpea flour", []string{"high_carb"}},
		{"grape tomatoes", nil},
		{"udon", []string{"gluten", "high_carb"}},
		{"ramen noodles", []string{"gluten", "high_carb"}},
		{"breadcrumbs", []string{"gluten", "high_carb"}},
		{"seitan", []string{"gluten"}},
		{"glutinous rice flour", []string{"high_carb"}},
		{"asafoetida", []string{"gluten"}},
		{"soy chorizo", []string{"high_sodium"}},
		{"", nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := e.Categories(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Categories(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// personas builds a persona for the tests from restrictions and forbidden entries.
func testPersona(restrictions []string, forbidden ...string) schemas.Persona {
	return schemas.Persona{ID: "p", Cuisines: []string{"Korean"}, DietaryRestrictions: restrictions, ForbiddenIngredients: forbidden}
}

func TestCheckIngredients(t *testing.T) {
	e := New()
	tests := []struct {
		name        string
		persona     schemas.Persona
		ingredients []string
		want        []string // Violation.String()s, in order
	}{
		{
			name:        "vegetarian chicken",
			persona:     testPersona([]string{"vegetarian"}, "meat", "seafood"),
			ingredients: []string{"paneer", "chicken thigh", "rice"},
			want:        []string{"vegetarian: chicken thigh (meat)", "forbidden: chicken thigh (meat)"},
		},
		{
			name:        "vegetarian fish sauce and gelatin",
			persona:     testPersona([]string{"vegetarian"}),
			ingredients: []string{"fish sauce", "gelatin", "vegetarian oyster sauce", "eggs", "ghee"},
			want:        []string{"vegetarian: fish sauce (seafood)", "vegetarian: gelatin (meat)"},
		},
		{
			name:        "vegan",
			persona:     testPersona([]string{"vegan"}, "meat", "seafood", "dairy", "eggs"),
			ingredients: []string{"black beans", "coconut milk", "egg noodles", "honey", "vegan cheese", "queso fresco", "eggplant", "peanut butter"},
			want: []string{
				"vegan: egg noodles (eggs)", "forbidden: egg noodles (eggs)",
				"vegan: honey (honey)",
				"vegan: queso fresco (dairy)", "forbidden: queso fresco (dairy)",
			},
		},
		{
			name:        "gluten free",
			persona:     testPersona([]string{"gluten_free"}, "gluten"),
			ingredients: []string{"gluten-free pasta", "tamari", "gluten-free tamari", "rice noodles", "soy sauce", "arborio rice", "gochujang"},
			want: []string{
				"gluten_free: tamari (gluten)", "forbidden: tamari (gluten)",
				"gluten_free: soy sauce (gluten)", "forbidden: soy sauce (gluten)",
				"gluten_free: gochujang (gluten)", "forbidden: gochujang (gluten)",
			},
		},
		{
			name:        "low sodium",
			persona:     testPersona([]string{"low_sodium"}, "high_sodium"),
			ingredients: []string{"low-sodium soy sauce", "white miso", "kombu", "sea salt", "vegetable broth", "low-sodium vegetable broth"},
			want: []string{
				"low_sodium: white miso (high_sodium)", "forbidden: white miso (high_sodium)",
				"low_sodium: sea salt (high_sodium)", "forbidden: sea salt (high_sodium)",
				"low_sodium: vegetable broth (high_sodium)", "forbidden: vegetable broth (high_sodium)",
			},
		},
		{
			name:        "keto",
			persona:     testPersona([]string{"keto"}),
			ingredients: []string{"cauliflower rice", "rice noodles", "shirataki noodles", "1 tsp cornstarch", "sugar-free syrup", "brown sugar", "bok choy"},
			want:        []string{"keto: rice noodles (high_carb)", "keto: 1 tsp cornstarch (high_carb)", "keto: brown sugar (high_carb)"},
		},
		{
			name:        "no restriction",
			persona:     testPersona([]string{"none"}),
			ingredients: []string{"pork belly", "fish sauce", "gochujang", "rice"},
			want:        nil,
		},
		{
			name:        "several restrictions on one ingredient",
			persona:     testPersona([]string{"vegan", "gluten_free", "keto"}),
			ingredients: []string{"egg noodles"},
			want:        []string{"vegan: egg noodles (eggs)", "gluten_free: egg noodles (gluten)", "keto: egg noodles (high_carb)"},
		},
		{
			name:        "repeated line reported once",
			persona:     testPersona([]string{"vegetarian"}),
			ingredients: []string{"bacon", " bacon "},
			want:        []string{"vegetarian: bacon (meat)"},
		},
		{
			name:        "plain forbidden names",
			persona:     testPersona([]string{"none"}, "soy sauce", "peanuts", "butter", "rice", "cheese", "sugar"),
			ingredients: []string{"low-sodium soy sauce", "peanut butter", "roasted peanuts", "rice noodles", "cauliflower rice", "vegan cheese", "sugar-free syrup", "unsalted butter"},
			want: []string{
				"forbidden: low-sodium soy sauce (soy sauce)",
				"forbidden: peanut butter (peanuts)", // an unknown name is never hidden: peanut butter has peanuts
				"forbidden: roasted peanuts (peanuts)",
				"forbidden: rice noodles (rice)",
				"forbidden: unsalted butter (butter)",
			},
		},
		{
			name:        "plain forbidden name inside a compound that shares its category",
			persona:     testPersona(nil, "noodles", "egg", "coconut"),
			ingredients: []string{"rice noodles", "shirataki noodles", "egg noodles", "eggplant", "coconut milk", "egg-free pasta"},
			want: []string{
				"forbidden: rice noodles (noodles)",
				"forbidden: egg noodles (noodles)", "forbidden: egg noodles (egg)",
				"forbidden: coconut milk (coconut)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Strings(e.CheckIngredients(tt.ingredients, tt.persona))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got violations\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestCheckRecipe(t *testing.T) {
	ps, err := schemas.DefaultPersonas()
	if err != nil {
		t.Fatal(err)
	}
	veg, _ := schemas.PersonaByID(ps, "persona_b_indian_veg")
	r := schemas.Recipe{
		Title: "Butter Chicken", // titles are not checked: only the chicken line counts
		Ingredients: []schemas.Ingredient{
			{Name: "chicken thighs", Quantity: "500 g"},
			{Name: "butter", Quantity: "2 tbsp"},
			{Name: "garam masala", Quantity: "1 tsp"},
		},
		Steps: []string{"Cook."},
	}
	want := []Violation{
		{Constraint: "vegetarian", Category: "meat", Ingredient: "chicken thighs"},
		{Constraint: ConstraintForbidden, Category: "meat", Ingredient: "chicken thighs"},
	}
	if got := e().Check(r, veg); !slices.Equal(got, want) {
		t.Errorf("Check = %v, want %v", got, want)
	}
}

// e is the shared engine.
func e() *Engine { return New() }

// Every default persona's preferred ingredients must respect its own constraints, or the
// rules judge would punish recipes for following the persona.
func TestDefaultPersonasPreferredAreAllowed(t *testing.T) {
	ps, err := schemas.DefaultPersonas()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		t.Run(p.ID, func(t *testing.T) {
			if got := e().CheckIngredients(p.PreferredIngredients, p); len(got) > 0 {
				t.Errorf("preferred ingredients violate the persona: got %v, want none", Strings(got))
			}
			for _, n := range p.FlavorNotes {
				if !KnownFlavor(n) {
					t.Errorf("flavor note %q has no indicators; got unknown, want a known note", n)
				}
			}
		})
	}
}

func TestTaxonomyCoversSchemasCategories(t *testing.T) {
	for _, c := range schemas.Categories() {
		t.Run(c, func(t *testing.T) {
			if n := e().termCount(c); n == 0 {
				t.Errorf("termCount(%q) = 0, want at least one taxonomy term", c)
			}
		})
	}
	for _, r := range schemas.Restrictions() {
		t.Run(r, func(t *testing.T) {
			cats, ok := RestrictionCategories(r)
			if !ok || len(cats) == 0 {
				t.Errorf("RestrictionCategories(%q) = %v, %v; want categories, true", r, cats, ok)
			}
			for _, c := range cats {
				if !schemas.IsCategory(c) {
					t.Errorf("restriction %q maps to %q; want a schemas category", r, c)
				}
			}
		})
	}
	if cats, ok := RestrictionCategories(schemas.RestrictionNone); !ok || len(cats) != 0 {
		t.Errorf("RestrictionCategories(none) = %v, %v; want [], true", cats, ok)
	}
	if _, ok := RestrictionCategories("paleo"); ok {
		t.Errorf("RestrictionCategories(paleo) ok = true, want false")
	}
}

func TestNewFromYAMLErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown category", "terms:\n  tofu: [soy]\n", `term "tofu": unknown category "soy"`},
		{"duplicate after normalising", "terms:\n  tomato: []\n  tomatoes: []\n", `normalises to "tomato", which is already listed`},
		{"unknown field", "terms: {}\nextra: 1\n", "field extra not found"},
		{"only-term missing", "terms:\n  sugar: [high_carb]\nqualifiers:\n  - phrases: [sugar free]\n    cancels: [high_carb]\n    only: [syrup]\n", `only-term "syrup" is not a term`},
		{"qualifier without cancels", "terms: {}\nqualifiers:\n  - phrases: [vegan]\n", "needs phrases and cancels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFromYAML([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := NewFromYAML(TaxonomyYAML()); err != nil {
		t.Errorf("embedded taxonomy: got %v, want no error", err)
	}
}

func TestViolationString(t *testing.T) {
	v := Violation{Constraint: "vegetarian", Category: "meat", Ingredient: "chicken thigh"}
	if got, want := v.String(), "vegetarian: chicken thigh (meat)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

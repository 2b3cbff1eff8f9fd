package schemas

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDefaultPersonas(t *testing.T) {
	ps, err := DefaultPersonas()
	if err != nil {
		t.Fatalf("DefaultPersonas: %v", err)
	}
	wantIDs := []string{
		"persona_a_korean_spicy",
		"persona_b_indian_veg",
		"persona_c_italian_gf",
		"persona_d_japanese_lowsodium",
		"persona_e_mexican_vegan",
		"persona_f_chinese_keto",
	}
	if got := PersonaIDs(ps); !slices.Equal(got, wantIDs) {
		t.Fatalf("PersonaIDs = %v, want %v", got, wantIDs)
	}
	tests := []struct {
		id           string
		name         string
		cuisines     []string
		restrictions []string
		forbidden    []string
		restricted   bool
	}{
		{"persona_a_korean_spicy", "Korean Food Lover", []string{"Korean", "Asian"}, []string{"none"}, nil, false},
		{"persona_b_indian_veg", "Indian Vegetarian", []string{"Indian"}, []string{"vegetarian"}, []string{"meat", "seafood"}, true},
		{"persona_c_italian_gf", "Italian Gluten-Free", []string{"Italian", "Mediterranean"}, []string{"gluten_free"}, []string{"gluten"}, true},
		{"persona_d_japanese_lowsodium", "Japanese Low-Sodium", []string{"Japanese"}, []string{"low_sodium"}, []string{"high_sodium"}, true},
		{"persona_e_mexican_vegan", "Mexican Vegan", []string{"Mexican", "Latin"}, []string{"vegan"}, []string{"meat", "seafood", "dairy", "eggs"}, true},
		{"persona_f_chinese_keto", "Chinese Keto", []string{"Chinese"}, []string{"keto"}, []string{"high_carb"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			p, ok := PersonaByID(ps, tt.id)
			if !ok {
				t.Fatalf("PersonaByID(%q) found nothing, want a persona", tt.id)
			}
			if p.Name != tt.name {
				t.Errorf("Name = %q, want %q", p.Name, tt.name)
			}
			if !slices.Equal(p.Cuisines, tt.cuisines) {
				t.Errorf("Cuisines = %v, want %v", p.Cuisines, tt.cuisines)
			}
			if !slices.Equal(p.DietaryRestrictions, tt.restrictions) {
				t.Errorf("DietaryRestrictions = %v, want %v", p.DietaryRestrictions, tt.restrictions)
			}
			if len(p.ForbiddenIngredients) != len(tt.forbidden) || !slices.Equal(p.ForbiddenIngredients, tt.forbidden) {
				t.Errorf("ForbiddenIngredients = %v, want %v", p.ForbiddenIngredients, tt.forbidden)
			}
			if got := p.Restricted(); got != tt.restricted {
				t.Errorf("Restricted() = %v, want %v", got, tt.restricted)
			}
			if n := len(p.PreferredIngredients); n < 8 || n > 12 {
				t.Errorf("len(PreferredIngredients) = %d, want 8..12", n)
			}
			if p.Description == "" || len(p.FlavorNotes) == 0 {
				t.Errorf("Description = %q, FlavorNotes = %v; want both non-empty", p.Description, p.FlavorNotes)
			}
		})
	}
	if _, ok := PersonaByID(ps, "persona_z_unknown"); ok {
		t.Errorf("PersonaByID(unknown) found a persona, want none")
	}
}

func TestLoadPersonas(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "personas.yaml")
	if err := os.WriteFile(path, DefaultPersonasYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := LoadPersonas(path)
	if err != nil {
		t.Fatalf("LoadPersonas: %v", err)
	}
	if len(ps) != 6 {
		t.Errorf("got %d personas, want 6", len(ps))
	}
	if _, err := LoadPersonas(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Errorf("LoadPersonas(missing file) = nil error, want one")
	}
}

// persona is a valid persona block (6 lines) whose id and restriction lines can be varied.
func persona(id, restrictions string) string {
	return "  - id: " + id + "\n" +
		"    name: Test\n" +
		"    cuisines: [Thai]\n" +
		"    dietary_restrictions: " + restrictions + "\n" +
		"    forbidden_ingredients: [meat]\n" +
		"    flavor_notes: [spicy]\n"
}

func TestParsePersonasErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings the error must contain
	}{
		{
			name: "malformed yaml",
			yaml: "personas:\n  - id: p1\n    name: \"unclosed\n",
			want: []string{"bad.yaml:3: found unexpected end of stream; fix the YAML syntax"},
		},
		{
			name: "duplicate key",
			yaml: "personas:\n" + persona("p1", "[none]") + "    name: Again\n",
			want: []string{`bad.yaml:8: mapping key "name" already defined at line 3`},
		},
		{
			name: "unknown field",
			yaml: "personas:\n" + persona("p1", "[none]") + "    colour: red\n",
			want: []string{`bad.yaml:8: persona "p1": unknown field "colour"; known fields are id, name, description`},
		},
		{
			name: "unknown top-level field",
			yaml: "version: 2\npersonas:\n" + persona("p1", "[none]"),
			want: []string{`bad.yaml:1: unknown top-level field "version"`},
		},
		{
			name: "duplicate id",
			yaml: "personas:\n" + persona("p1", "[none]") + persona("p1", "[vegan]"),
			want: []string{`bad.yaml:8: persona "p1": duplicate id (first defined at line 2)`},
		},
		{
			name: "empty restrictions",
			yaml: "personas:\n" + persona("persona_b_indian_veg", "[]"),
			want: []string{`bad.yaml:5: persona "persona_b_indian_veg": dietary_restrictions is empty; list at least one of vegetarian, vegan, gluten_free, low_sodium, keto, or [none] to state there is none`},
		},
		{
			name: "missing restrictions",
			yaml: "personas:\n  - id: p1\n    cuisines: [Thai]\n",
			want: []string{`bad.yaml:2: persona "p1": dietary_restrictions is empty`},
		},
		{
			name: "restrictions not a list",
			yaml: "personas:\n" + persona("p1", "none"),
			want: []string{`bad.yaml:5: persona "p1": dietary_restrictions must be a list, e.g. dietary_restrictions: [none]`},
		},
		{
			name: "unknown restriction",
			yaml: "personas:\n" + persona("p1", "[paleo]"),
			want: []string{`bad.yaml:5: persona "p1": unknown dietary restriction "paleo"; use one of vegetarian, vegan, gluten_free, low_sodium, keto, or [none]`},
		},
		{
			name: "misspelt restriction",
			yaml: "personas:\n" + persona("p1", "[Gluten-Free]"),
			want: []string{`bad.yaml:5: persona "p1": unknown dietary restriction "Gluten-Free"; did you mean "gluten_free"?`},
		},
		{
			name: "none combined",
			yaml: "personas:\n" + persona("p1", "[none, vegan]"),
			want: []string{`bad.yaml:5: persona "p1": dietary_restrictions combines "none" with other restrictions; remove "none"`},
		},
		{
			name: "duplicate restriction",
			yaml: "personas:\n" + persona("p1", "[vegan, vegan]"),
			want: []string{`bad.yaml:5: persona "p1": dietary_restrictions lists "vegan" twice`},
		},
		{
			name: "empty cuisines",
			yaml: "personas:\n  - id: p1\n    cuisines: []\n    dietary_restrictions: [keto]\n",
			want: []string{`bad.yaml:3: persona "p1": cuisines is empty; list at least one cuisine`},
		},
		{
			name: "missing cuisines",
			yaml: "personas:\n  - id: p1\n    dietary_restrictions: [keto]\n",
			want: []string{`bad.yaml:2: persona "p1": cuisines is empty`},
		},
		{
			name: "empty id",
			yaml: "personas:\n  - id: \"\"\n    cuisines: [Thai]\n    dietary_restrictions: [keto]\n",
			want: []string{`bad.yaml:2: persona without id: id is empty; give the persona a unique id`},
		},
		{
			name: "id with spaces",
			yaml: "personas:\n" + persona("Persona G", "[keto]"),
			want: []string{`bad.yaml:2: persona "Persona G": id must be lower-case letters, digits and underscores`, `"persona_g"`},
		},
		{
			name: "category lookalike",
			yaml: "personas:\n  - id: p1\n    cuisines: [Thai]\n    dietary_restrictions: [keto]\n    forbidden_ingredients:\n      - meat\n      - High-Sodium\n",
			want: []string{`bad.yaml:7: persona "p1": forbidden ingredient "High-Sodium" looks like the category "high_sodium"`},
		},
		{
			name: "empty forbidden item",
			yaml: "personas:\n  - id: p1\n    cuisines: [Thai]\n    dietary_restrictions: [keto]\n    forbidden_ingredients: [meat, \"\"]\n",
			want: []string{`bad.yaml:5: persona "p1": forbidden_ingredients has an empty item; remove it`},
		},
		{
			name: "string field given a list",
			yaml: "personas:\n  - id: p1\n    name: [a, b]\n    cuisines: [Thai]\n    dietary_restrictions: [keto]\n",
			want: []string{`bad.yaml:3: persona "p1": name must be a single string`},
		},
		{
			name: "personas not a list",
			yaml: "personas:\n  id: p1\n",
			want: []string{`bad.yaml:2: ` + "`personas:`" + ` must be a list`},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{"bad.yaml:1: no personas"},
		},
		{
			name: "empty list",
			yaml: "personas: []\n",
			want: []string{"bad.yaml:1: the personas list is empty"},
		},
		{
			name: "every problem reported",
			yaml: "personas:\n" + persona("p1", "[paleo]") + persona("p2", "[]"),
			want: []string{`bad.yaml:5: persona "p1": unknown dietary restriction "paleo"`, `bad.yaml:11: persona "p2": dietary_restrictions is empty`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := ParsePersonas([]byte(tt.yaml), "bad.yaml")
			if err == nil {
				t.Fatalf("got %d personas and no error, want an error containing %q", len(ps), tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error\n%v\nwant it to contain\n%s", err, w)
				}
			}
		})
	}
}

func TestParsePersonasValid(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		wantIDs   []string
		forbidden []string
	}{
		{
			name:    "minimal",
			yaml:    "personas:\n" + persona("p1", "[none]"),
			wantIDs: []string{"p1"}, forbidden: []string{"meat"},
		},
		{
			name:    "plain forbidden names and several restrictions",
			yaml:    "personas:\n  - id: p2\n    cuisines: [Thai]\n    dietary_restrictions: [vegan, gluten_free]\n    forbidden_ingredients: [peanuts, soy sauce, honey]\n",
			wantIDs: []string{"p2"}, forbidden: []string{"peanuts", "soy sauce", "honey"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := ParsePersonas([]byte(tt.yaml), "ok.yaml")
			if err != nil {
				t.Fatalf("ParsePersonas: %v", err)
			}
			if got := PersonaIDs(ps); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("ids = %v, want %v", got, tt.wantIDs)
			}
			if got := ps[0].ForbiddenIngredients; !slices.Equal(got, tt.forbidden) {
				t.Errorf("forbidden = %v, want %v", got, tt.forbidden)
			}
		})
	}
}

func TestVocabulary(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string) bool
		in   string
		want bool
	}{
		{"restriction vegan", IsRestriction, "vegan", true},
		{"restriction none is not a restriction", IsRestriction, RestrictionNone, false},
		{"restriction is case sensitive", IsRestriction, "Vegan", false},
		{"category high_carb", IsCategory, "high_carb", true},
		{"category poultry folds into meat", IsCategory, "poultry", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fn(tt.in); got != tt.want {
				t.Errorf("got %v for %q, want %v", got, tt.in, tt.want)
			}
		})
	}
	// The accessors hand out copies: changing one must not change the vocabulary.
	c := Categories()
	c[0] = "changed"
	if Categories()[0] != CategoryMeat {
		t.Errorf("Categories()[0] = %q after mutating a copy, want %q", Categories()[0], CategoryMeat)
	}
	if got := len(Restrictions()); got != 5 {
		t.Errorf("len(Restrictions()) = %d, want 5", got)
	}
}

package schemas_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/prompts"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// wantMix is the per-persona category mix of PIPELINE.md §5.2.
var wantMix = map[string]int{
	schemas.CategoryBasicAlignment:   8,
	schemas.CategoryConstraintStress: 6,
	schemas.CategoryEdgeCase:         4,
	schemas.CategoryCrossPersona:     2,
}

func defaultCases(t *testing.T) ([]schemas.TestCase, []schemas.Persona) {
	t.Helper()
	ps, err := schemas.DefaultPersonas()
	if err != nil {
		t.Fatalf("DefaultPersonas: %v", err)
	}
	cs, err := schemas.DefaultTestCases()
	if err != nil {
		t.Fatalf("DefaultTestCases: %v", err)
	}
	return cs, ps
}

func TestDefaultTestCasesMix(t *testing.T) {
	cs, ps := defaultCases(t)
	if len(cs) != 120 {
		t.Fatalf("got %d test cases, want 120", len(cs))
	}
	for _, p := range ps {
		t.Run(p.ID, func(t *testing.T) {
			mine := schemas.TestCasesFor(cs, p.ID)
			if len(mine) != 20 {
				t.Fatalf("got %d cases, want 20", len(mine))
			}
			got := map[string]int{}
			for _, c := range mine {
				got[c.Category]++
			}
			for cat, want := range wantMix {
				if got[cat] != want {
					t.Errorf("%s: got %d cases, want %d", cat, got[cat], want)
				}
			}
		})
	}
	if got := schemas.TestCaseCategories(); !slices.Equal(got, []string{"basic_alignment", "constraint_stress", "edge_case", "cross_persona"}) {
		t.Errorf("TestCaseCategories() = %v, want the four categories in report order", got)
	}
}

// TestDefaultTestCasesContent checks each category does what its name says, with the rules
// engine as the authority on constraints.
func TestDefaultTestCasesContent(t *testing.T) {
	cs, ps := defaultCases(t)
	eng := rules.New()
	var allCuisines []string
	for _, p := range ps {
		for _, c := range p.Cuisines {
			if !slices.Contains(allCuisines, c) {
				allCuisines = append(allCuisines, c)
			}
		}
	}
	mentions := func(text, phrase string) bool {
		return strings.Contains(" "+rules.Normalize(text)+" ", " "+rules.Normalize(phrase)+" ")
	}
	for _, c := range cs {
		t.Run(c.ID, func(t *testing.T) {
			p, ok := schemas.PersonaByID(ps, c.PersonaID)
			if !ok {
				t.Fatalf("persona %q not found", c.PersonaID)
			}
			if !prompts.IsNeutral(c.Request) {
				t.Errorf("request %q mentions a diet; requests must be persona-neutral", c.Request)
			}
			var violating, preferred []string
			for _, item := range c.Pantry {
				if !prompts.IsNeutral(item) {
					t.Errorf("pantry item %q mentions a diet", item)
				}
				if !mentions(c.Request, item) {
					t.Errorf("pantry item %q is not named in the request %q", item, c.Request)
				}
				if eng.Violates(item, p) {
					violating = append(violating, item)
				}
				if slices.ContainsFunc(p.PreferredIngredients, func(pi string) bool { return rules.Normalize(pi) == rules.Normalize(item) }) {
					preferred = append(preferred, item)
				}
			}
			switch c.Category {
			case schemas.CategoryBasicAlignment:
				if len(violating) > 0 {
					t.Errorf("pantry items %v break the persona's constraints, want none in basic_alignment", violating)
				}
				if len(preferred) == 0 {
					t.Errorf("pantry %v uses none of the preferred ingredients %v, want at least one", c.Pantry, p.PreferredIngredients)
				}
			case schemas.CategoryConstraintStress:
				if p.Restricted() && len(violating) == 0 {
					t.Errorf("pantry %v breaks no constraint of the persona, want a forbidden ingredient", c.Pantry)
				}
				if !p.Restricted() && len(preferred) > 0 {
					t.Errorf("pantry items %v are preferred ingredients; an unrestricted persona's stress pantry must be at odds with its style", preferred)
				}
			case schemas.CategoryEdgeCase:
				if len(c.Pantry) > 2 {
					t.Errorf("pantry %v has %d items, want at most 2 for an edge case", c.Pantry, len(c.Pantry))
				}
				if len(violating) > 0 {
					t.Errorf("pantry items %v break the persona's constraints, want none in edge_case", violating)
				}
			case schemas.CategoryCrossPersona:
				if len(violating) > 0 {
					t.Errorf("pantry items %v break the persona's constraints, want none in cross_persona", violating)
				}
				for _, own := range p.Cuisines {
					if mentions(c.Request, own) {
						t.Errorf("request %q names the persona's own cuisine %q", c.Request, own)
					}
				}
				if !slices.ContainsFunc(allCuisines, func(cu string) bool { return !slices.Contains(p.Cuisines, cu) && mentions(c.Request, cu) }) {
					t.Errorf("request %q names no other persona's cuisine", c.Request)
				}
			}
		})
	}
}

func TestLoadTestCases(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "test_cases.yaml")
	if err := os.WriteFile(path, schemas.DefaultTestCasesYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := schemas.DefaultPersonas()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := schemas.LoadTestCases(path, schemas.PersonaIDs(ps))
	if err != nil {
		t.Fatalf("LoadTestCases: %v", err)
	}
	if len(cs) != 120 {
		t.Errorf("got %d cases, want 120", len(cs))
	}
	first := schemas.TestCase{
		ID: "persona_a_korean_spicy-basic_alignment-01", PersonaID: "persona_a_korean_spicy", Category: "basic_alignment",
		Request: "Create a Korean dinner using: kimchi, pork belly, firm tofu, and scallions.",
		Pantry:  []string{"kimchi", "pork belly", "firm tofu", "scallions"},
	}
	if got := cs[0]; got.ID != first.ID || got.PersonaID != first.PersonaID || got.Category != first.Category ||
		got.Request != first.Request || !slices.Equal(got.Pantry, first.Pantry) || got.Notes != "" {
		t.Errorf("first case: got %+v, want %+v", got, first)
	}
	if _, err := schemas.LoadTestCases(filepath.Join(dir, "missing.yaml"), schemas.PersonaIDs(ps)); err == nil {
		t.Errorf("LoadTestCases(missing file) = nil error, want one")
	}
}

// testCase is a valid case block (6 lines) whose id, persona, category and request lines can
// be varied.
func testCase(id, persona, category, request string) string {
	return "  - id: " + id + "\n" +
		"    persona_id: " + persona + "\n" +
		"    category: " + category + "\n" +
		"    request: " + request + "\n" +
		"    pantry: [tofu, kimchi]\n" +
		"    notes: test\n"
}

func TestParseTestCasesErrors(t *testing.T) {
	personas := []string{"p1", "p2"}
	ok := testCase("p1-basic_alignment-01", "p1", "basic_alignment", "Cook tofu and kimchi.")
	tests := []struct {
		name     string
		yaml     string
		personas []string
		want     []string // substrings the error must contain
	}{
		{
			name: "malformed yaml",
			yaml: "test_cases:\n  - id: x\n    request: \"unclosed\n",
			want: []string{"bad.yaml:3: found unexpected end of stream; fix the YAML syntax"},
		},
		{
			name: "duplicate key",
			yaml: "test_cases:\n" + ok + "    request: again\n",
			want: []string{`bad.yaml:8: mapping key "request" already defined at line 5`},
		},
		{
			name: "unknown field",
			yaml: "test_cases:\n" + ok + "    expected: A\n",
			want: []string{`bad.yaml:8: test case "p1-basic_alignment-01": unknown field "expected"; known fields are id, persona_id, category, request, pantry, notes`},
		},
		{
			name: "unknown top-level field",
			yaml: "version: 1\ntest_cases:\n" + ok,
			want: []string{`bad.yaml:1: unknown top-level field "version"`},
		},
		{
			name: "duplicate id",
			yaml: "test_cases:\n" + ok + ok,
			want: []string{`bad.yaml:8: test case "p1-basic_alignment-01": duplicate id (first defined at line 2)`},
		},
		{
			name: "unknown persona",
			yaml: "test_cases:\n" + testCase("p9-basic_alignment-01", "p9", "basic_alignment", "Cook."),
			want: []string{`bad.yaml:3: test case "p9-basic_alignment-01": unknown persona "p9"; use one of p1, p2`},
		},
		{
			name: "unknown category",
			yaml: "test_cases:\n" + testCase("p1-stress-01", "p1", "stress", "Cook."),
			want: []string{`bad.yaml:4: test case "p1-stress-01": unknown category "stress"; use one of basic_alignment, constraint_stress, edge_case, cross_persona`},
		},
		{
			name: "empty request",
			yaml: "test_cases:\n" + testCase("p1-edge_case-01", "p1", "edge_case", `"  "`),
			want: []string{`bad.yaml:5: test case "p1-edge_case-01": request is empty`},
		},
		{
			name: "missing request",
			yaml: "test_cases:\n  - id: p1-edge_case-01\n    persona_id: p1\n    category: edge_case\n",
			want: []string{`bad.yaml:2: test case "p1-edge_case-01": request is empty`},
		},
		{
			name: "id off convention",
			yaml: "test_cases:\n" + testCase("p2-basic_alignment-01", "p1", "basic_alignment", "Cook."),
			want: []string{`bad.yaml:2: test case "p2-basic_alignment-01": id must be <persona_id>-<category>-<NN> for this case, e.g. "p1-basic_alignment-01"`},
		},
		{
			name: "empty id",
			yaml: "test_cases:\n" + testCase(`""`, "p1", "edge_case", "Cook."),
			want: []string{`bad.yaml:2: test case without id: id is empty; use <persona_id>-<category>-<NN>, e.g. "p1-edge_case-01"`},
		},
		{
			name: "pantry not a list",
			yaml: "test_cases:\n  - id: p1-edge_case-01\n    persona_id: p1\n    category: edge_case\n    request: Cook.\n    pantry: tofu\n",
			want: []string{`bad.yaml:6: test case "p1-edge_case-01": pantry must be a list`},
		},
		{
			name: "empty pantry item",
			yaml: "test_cases:\n  - id: p1-edge_case-01\n    persona_id: p1\n    category: edge_case\n    request: Cook.\n    pantry: [tofu, \"\"]\n",
			want: []string{`bad.yaml:6: test case "p1-edge_case-01": pantry has an empty item`},
		},
		{
			name: "empty pantry outside edge_case",
			yaml: "test_cases:\n  - id: p1-cross_persona-01\n    persona_id: p1\n    category: cross_persona\n    request: Cook.\n    pantry: []\n",
			want: []string{`bad.yaml:6: test case "p1-cross_persona-01": pantry is empty`},
		},
		{
			name: "request given a list",
			yaml: "test_cases:\n  - id: p1-edge_case-01\n    persona_id: p1\n    category: edge_case\n    request: [a, b]\n",
			want: []string{`bad.yaml:5: test case "p1-edge_case-01": request must be a single string`},
		},
		{
			name: "test_cases not a list",
			yaml: "test_cases:\n  id: x\n",
			want: []string{"bad.yaml:2: `test_cases:` must be a list"},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{"bad.yaml:1: no test cases"},
		},
		{
			name: "empty list",
			yaml: "test_cases: []\n",
			want: []string{"bad.yaml:1: the test_cases list is empty"},
		},
		{
			name:     "no personas to check against",
			yaml:     "test_cases:\n" + ok,
			personas: []string{},
			want:     []string{"bad.yaml: no personas to validate the test cases against"},
		},
		{
			name: "every problem reported",
			yaml: "test_cases:\n" + testCase("p9-edge_case-01", "p9", "edge_case", "Cook.") + testCase("p1-weird-01", "p1", "weird", "Cook."),
			want: []string{`bad.yaml:3: test case "p9-edge_case-01": unknown persona "p9"`, `bad.yaml:10: test case "p1-weird-01": unknown category "weird"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := personas
			if tt.personas != nil {
				ps = tt.personas
			}
			cs, err := schemas.ParseTestCases([]byte(tt.yaml), "bad.yaml", ps)
			if err == nil {
				t.Fatalf("got %d cases and no error, want an error containing %q", len(cs), tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error\n%v\nwant it to contain\n%s", err, w)
				}
			}
		})
	}
}

func TestParseTestCasesValid(t *testing.T) {
	yaml := "test_cases:\n" +
		testCase("p1-basic_alignment-01", "p1", "basic_alignment", "Cook tofu and kimchi.") +
		"  - id: p2-edge_case-01\n    persona_id: p2\n    category: edge_case\n    request: What should I cook?\n"
	cs, err := schemas.ParseTestCases([]byte(yaml), "ok.yaml", []string{"p1", "p2"})
	if err != nil {
		t.Fatalf("ParseTestCases: %v", err)
	}
	if len(cs) != 2 || cs[0].ID != "p1-basic_alignment-01" || cs[1].ID != "p2-edge_case-01" || len(cs[1].Pantry) != 0 {
		t.Errorf("got %+v, want the two cases in file order, the second with no pantry", cs)
	}
	if !slices.Equal(cs[0].Pantry, []string{"tofu", "kimchi"}) || cs[0].Notes != "test" {
		t.Errorf("first case: got pantry %v notes %q, want [tofu kimchi] and \"test\"", cs[0].Pantry, cs[0].Notes)
	}
}

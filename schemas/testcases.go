package schemas

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultTestCasesYAML is the checked-in test_cases.yaml (PIPELINE.md §5.2), embedded so the
// evaluation job, its tests and Dataflow workers all judge the same 120 cases.
//
//go:embed test_cases.yaml
var DefaultTestCasesYAML []byte

// DefaultTestCasesPath names DefaultTestCasesYAML in error messages.
const DefaultTestCasesPath = "schemas/test_cases.yaml"

// testCaseCategories are the categories in the order reports list them.
var testCaseCategories = []string{CategoryBasicAlignment, CategoryConstraintStress, CategoryEdgeCase, CategoryCrossPersona}

// TestCaseCategories returns the evaluation categories in report order. It returns a fresh
// slice.
func TestCaseCategories() []string { return slices.Clone(testCaseCategories) }

// IsTestCaseCategory reports whether name is an evaluation category.
func IsTestCaseCategory(name string) bool { return slices.Contains(testCaseCategories, name) }

// DefaultTestCases parses DefaultTestCasesYAML against the default personas.
func DefaultTestCases() ([]TestCase, error) {
	ps, err := DefaultPersonas()
	if err != nil {
		return nil, err
	}
	return ParseTestCases(DefaultTestCasesYAML, DefaultTestCasesPath, PersonaIDs(ps))
}

// LoadTestCases reads and parses a test_cases.yaml file (see ParseTestCases).
func LoadTestCases(path string, personaIDs []string) ([]TestCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load test cases: %w", err)
	}
	return ParseTestCases(data, path, personaIDs)
}

// caseNumber is the <NN> suffix of a test-case id.
var caseNumber = regexp.MustCompile(`^[0-9]{2,3}$`)

// testCaseFields maps the yaml field names of TestCase to whether they hold a list.
var testCaseFields = map[string]bool{"id": false, "persona_id": false, "category": false, "request": false, "pantry": true, "notes": false}

const knownTestCaseFields = "id, persona_id, category, request, pantry, notes"

// ParseTestCases decodes and validates test_cases.yaml content; name is the file name used
// in messages and personaIDs are the personas a case may name (the ids of the personas.yaml
// the job runs with). It is strict, like ParsePersonas, because a typo silently drops a case
// from a persona's win rate: unknown fields, duplicate ids, ids not of the form
// <persona_id>-<category>-<NN>, unknown personas and categories, empty requests and empty
// pantry items are errors, and so is an empty pantry outside edge_case. Every problem found
// is reported (joined), each as "name:line: test case "id": what is wrong; how to fix it".
// Cases come back in file order.
func ParseTestCases(data []byte, name string, personaIDs []string) ([]TestCase, error) {
	if len(personaIDs) == 0 {
		return nil, fmt.Errorf("%s: no personas to validate the test cases against; load personas.yaml first", name)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:1: no test cases; the file must contain a top-level `test_cases:` list", name)
		}
		return nil, yamlError(name, err)
	}
	list, err := testCasesList(&doc, name)
	if err != nil {
		return nil, err
	}

	var errs []error
	var out []TestCase
	firstLine := map[string]int{} // case id -> line of its first definition
	for _, item := range list.Content {
		tc, cerrs := parseTestCaseNode(item, name, personaIDs)
		errs = append(errs, cerrs...)
		if len(cerrs) > 0 {
			continue
		}
		if prev, ok := firstLine[tc.ID]; ok {
			errs = append(errs, fmt.Errorf("%s:%d: test case %q: duplicate id (first defined at line %d); number the cases of a persona and category 01, 02, ...", name, item.Line, tc.ID, prev))
			continue
		}
		firstLine[tc.ID] = item.Line
		out = append(out, tc)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s:%d: the test_cases list is empty; add at least one case", name, list.Line)
	}
	return out, nil
}

// testCasesList finds the `test_cases:` sequence in a decoded document.
func testCasesList(doc *yaml.Node, name string) (*yaml.Node, error) {
	return topLevelList(doc, name, "test_cases", "test cases", "case")
}

// parseTestCaseNode checks the shape of one case mapping, decodes it and validates its
// content. It returns every problem it finds.
func parseTestCaseNode(n *yaml.Node, name string, personaIDs []string) (TestCase, []error) {
	if n.Kind != yaml.MappingNode {
		return TestCase{}, []error{fmt.Errorf("%s:%d: each item of `test_cases:` must be a mapping (id: ..., persona_id: ...), found %s", name, n.Line, kindName(n))}
	}
	id := ""
	fields := map[string]*yaml.Node{} // field name -> key node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fields[k.Value] = k
		if k.Value == "id" && v.Kind == yaml.ScalarNode {
			id = v.Value
		}
	}
	label := fmt.Sprintf("test case %q", id)
	if id == "" {
		label = "test case without id"
	}
	at := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s: %s", name, line, label, fmt.Sprintf(format, args...))
	}

	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		isList, known := testCaseFields[k.Value]
		switch {
		case !known:
			errs = append(errs, at(k.Line, "unknown field %q; known fields are %s", k.Value, knownTestCaseFields))
		case isList && v.Kind != yaml.SequenceNode && !(v.Kind == yaml.ScalarNode && v.Tag == "!!null"):
			errs = append(errs, at(k.Line, "%s must be a list, e.g. %s: [tofu, kimchi]", k.Value, k.Value))
		case isList:
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					errs = append(errs, at(item.Line, "%s items must be plain strings, found %s", k.Value, kindName(item)))
				} else if strings.TrimSpace(item.Value) == "" {
					errs = append(errs, at(item.Line, "%s has an empty item; remove it", k.Value))
				}
			}
		case v.Kind != yaml.ScalarNode:
			errs = append(errs, at(k.Line, "%s must be a single string, found %s", k.Value, kindName(v)))
		}
	}
	if len(errs) > 0 {
		return TestCase{}, errs
	}

	var tc TestCase
	if err := n.Decode(&tc); err != nil {
		return TestCase{}, []error{yamlError(name, err)}
	}
	line := func(field string) int {
		if k, ok := fields[field]; ok {
			return k.Line
		}
		return n.Line
	}

	personaOK := slices.Contains(personaIDs, tc.PersonaID)
	switch {
	case tc.PersonaID == "":
		errs = append(errs, at(line("persona_id"), "persona_id is empty; name one of %s", strings.Join(personaIDs, ", ")))
	case !personaOK:
		errs = append(errs, at(line("persona_id"), "unknown persona %q; use one of %s", tc.PersonaID, strings.Join(personaIDs, ", ")))
	}
	categoryOK := IsTestCaseCategory(tc.Category)
	switch {
	case tc.Category == "":
		errs = append(errs, at(line("category"), "category is empty; use one of %s", strings.Join(testCaseCategories, ", ")))
	case !categoryOK:
		errs = append(errs, at(line("category"), "unknown category %q; use one of %s", tc.Category, strings.Join(testCaseCategories, ", ")))
	}
	if strings.TrimSpace(tc.Request) == "" {
		errs = append(errs, at(line("request"), "request is empty; write the user message both models answer"))
	}
	if len(tc.Pantry) == 0 && tc.Category != CategoryEdgeCase {
		errs = append(errs, at(line("pantry"), "pantry is empty; list the ingredients the request names (only an edge_case may have none)"))
	}
	if want := tc.PersonaID + "-" + tc.Category + "-"; tc.ID == "" {
		errs = append(errs, at(line("id"), "id is empty; use <persona_id>-<category>-<NN>, e.g. %q", want+"01"))
	} else if personaOK && categoryOK && (!strings.HasPrefix(tc.ID, want) || !caseNumber.MatchString(strings.TrimPrefix(tc.ID, want))) {
		errs = append(errs, at(line("id"), "id must be <persona_id>-<category>-<NN> for this case, e.g. %q", want+"01"))
	}
	return tc, errs
}

// TestCasesFor returns the cases of one persona, in file order.
func TestCasesFor(cases []TestCase, personaID string) []TestCase {
	var out []TestCase
	for _, c := range cases {
		if c.PersonaID == personaID {
			out = append(out, c)
		}
	}
	return out
}

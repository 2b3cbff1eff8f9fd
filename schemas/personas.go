package schemas

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultPersonasYAML is the checked-in personas.yaml, embedded so that tests, the offline
// demo and Dataflow workers all see the same personas without shipping a file.
//
//go:embed personas.yaml
var DefaultPersonasYAML []byte

// DefaultPersonasPath names DefaultPersonasYAML in error messages: the path a user would
// edit, relative to the module root.
const DefaultPersonasPath = "schemas/personas.yaml"

// DefaultPersonas parses DefaultPersonasYAML.
func DefaultPersonas() ([]Persona, error) {
	return ParsePersonas(DefaultPersonasYAML, DefaultPersonasPath)
}

// LoadPersonas reads and parses a personas.yaml file (see ParsePersonas).
func LoadPersonas(path string) ([]Persona, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load personas: %w", err)
	}
	return ParsePersonas(data, path)
}

// personasFile is the top-level shape of personas.yaml.
type personasFile struct {
	Personas []Persona `yaml:"personas"`
}

// personaIDPattern keeps ids usable as Parquet partition values (persona=<id>/) and as
// prompt-id prefixes without escaping.
var personaIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_]*$`)

// ParsePersonas decodes and validates personas.yaml content; name is the file name used in
// messages. It is strict because a typo in a persona silently changes what the rules judge
// vetoes: unknown fields, duplicate or malformed ids, missing or unknown dietary
// restrictions, "none" mixed with real restrictions, empty cuisines and empty or
// category-lookalike forbidden entries are all errors. Every problem found is reported
// (joined), each as "name:line: persona "id": what is wrong; how to fix it".
func ParsePersonas(data []byte, name string) ([]Persona, error) {
	// Decode into a node tree first: its positions give each persona's and field's line.
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:1: no personas; the file must contain a top-level `personas:` list", name)
		}
		return nil, yamlError(name, err)
	}
	list, err := personasList(&doc, name)
	if err != nil {
		return nil, err
	}

	var errs []error
	var out []Persona
	firstLine := map[string]int{} // persona id -> line of its first definition
	for _, item := range list.Content {
		p, perrs := parsePersonaNode(item, name)
		errs = append(errs, perrs...)
		if len(perrs) > 0 {
			continue
		}
		if prev, ok := firstLine[p.ID]; ok {
			errs = append(errs, fmt.Errorf("%s:%d: persona %q: duplicate id (first defined at line %d); give each persona a unique id", name, item.Line, p.ID, prev))
			continue
		}
		firstLine[p.ID] = item.Line
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// Safety net: the typed strict decode must agree with the node-by-node checks above.
	var typed personasFile
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&typed); err != nil {
		return nil, yamlError(name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s:%d: the personas list is empty; add at least one persona", name, list.Line)
	}
	return out, nil
}

// personasList finds the `personas:` sequence in a decoded document.
func personasList(doc *yaml.Node, name string) (*yaml.Node, error) {
	return topLevelList(doc, name, "personas", "personas", "persona")
}

// personaFields maps every yaml field name of Persona to whether it holds a list, and
// knownPersonaFields lists the names in declaration order for messages. Both come from
// the struct tags so that a field added to Persona is accepted without touching the loader.
var personaFields, knownPersonaFields = func() (map[string]bool, string) {
	fields := map[string]bool{}
	var names []string
	t := reflect.TypeFor[Persona]()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f.Type.Kind() == reflect.Slice
		names = append(names, tag)
	}
	return fields, strings.Join(names, ", ")
}()

// parsePersonaNode checks the shape of one persona mapping, decodes it and validates its
// content. It returns every problem it finds.
func parsePersonaNode(n *yaml.Node, name string) (Persona, []error) {
	if n.Kind != yaml.MappingNode {
		return Persona{}, []error{fmt.Errorf("%s:%d: each item of `personas:` must be a mapping (id: ..., name: ...), found %s", name, n.Line, kindName(n))}
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
	label := fmt.Sprintf("persona %q", id)
	if id == "" {
		label = "persona without id"
	}
	at := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s: %s", name, line, label, fmt.Sprintf(format, args...))
	}

	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		isList, known := personaFields[k.Value]
		switch {
		case !known:
			errs = append(errs, at(k.Line, "unknown field %q; known fields are %s", k.Value, knownPersonaFields))
		case isList && v.Kind != yaml.SequenceNode && !(v.Kind == yaml.ScalarNode && v.Tag == "!!null"):
			errs = append(errs, at(k.Line, "%s must be a list, e.g. %s: [%s]", k.Value, k.Value, exampleValue(k.Value)))
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
		return Persona{}, errs
	}

	var p Persona
	if err := n.Decode(&p); err != nil {
		return Persona{}, []error{yamlError(name, err)}
	}
	line := func(field string) int {
		if k, ok := fields[field]; ok {
			return k.Line
		}
		return n.Line
	}

	switch {
	case p.ID == "":
		errs = append(errs, at(line("id"), "id is empty; give the persona a unique id such as persona_g_thai_pescatarian"))
	case !personaIDPattern.MatchString(p.ID):
		errs = append(errs, at(line("id"), "id must be lower-case letters, digits and underscores (it names output folders); rename it, e.g. %q", suggestID(p.ID)))
	}
	if len(p.Cuisines) == 0 {
		errs = append(errs, at(line("cuisines"), "cuisines is empty; list at least one cuisine, e.g. cuisines: [Korean]"))
	}
	errs = append(errs, checkRestrictions(p.DietaryRestrictions, line("dietary_restrictions"),
		func(i int) int { return itemLine(n, "dietary_restrictions", i) }, at)...)
	for i, f := range p.ForbiddenIngredients {
		if err := checkForbidden(f); err != nil {
			errs = append(errs, at(itemLine(n, "forbidden_ingredients", i), "%v", err))
		}
	}
	return p, errs
}

// checkRestrictions validates a dietary_restrictions list against the rules vocabulary;
// line is the field's line and itemLine(i) the line of item i.
func checkRestrictions(rs []string, line int, itemLine func(int) int, at func(int, string, ...any) error) []error {
	vocab := strings.Join(restrictions, ", ")
	if len(rs) == 0 {
		return []error{at(line, "dietary_restrictions is empty; list at least one of %s, or [%s] to state there is none", vocab, RestrictionNone)}
	}
	var errs []error
	seen := map[string]bool{}
	for i, r := range rs {
		l := itemLine(i)
		switch {
		case seen[r]:
			errs = append(errs, at(l, "dietary_restrictions lists %q twice; remove the duplicate", r))
		case r == RestrictionNone && len(rs) > 1:
			errs = append(errs, at(l, "dietary_restrictions combines %q with other restrictions; remove %q", RestrictionNone, RestrictionNone))
		case r == RestrictionNone || IsRestriction(r):
		case IsRestriction(canonicalName(r)) || canonicalName(r) == RestrictionNone:
			errs = append(errs, at(l, "unknown dietary restriction %q; did you mean %q?", r, canonicalName(r)))
		default:
			errs = append(errs, at(l, "unknown dietary restriction %q; use one of %s, or [%s] to state there is none", r, vocab, RestrictionNone))
		}
		seen[r] = true
	}
	return errs
}

// checkForbidden accepts a category name or any plain ingredient name, but rejects
// spellings that look like a category ("High-Sodium") because they would silently be
// treated as an ingredient name that never matches.
func checkForbidden(f string) error {
	switch c := canonicalName(f); {
	case strings.TrimSpace(f) == "":
		return errors.New("forbidden_ingredients has an empty item; remove it")
	case f != strings.TrimSpace(f):
		return fmt.Errorf("forbidden ingredient %q has surrounding spaces; remove them", f)
	case IsCategory(f):
		return nil
	case IsCategory(c):
		return fmt.Errorf("forbidden ingredient %q looks like the category %q; write %q to forbid the category (categories: %s)", f, c, c, strings.Join(categories, ", "))
	}
	return nil
}

// canonicalName lower-cases a name and joins its words with underscores, the spelling of
// restriction and category names.
func canonicalName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '-' || r == '_' }), "_")
}

// suggestID turns an invalid id into a valid one for the error message.
func suggestID(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.Trim(b.String(), "_")
	if s == "" {
		return "persona_x"
	}
	return s
}

// itemLine returns the line of item i of a persona's list field, or the persona's line.
func itemLine(n *yaml.Node, field string, i int) int {
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == field && i < len(n.Content[j+1].Content) {
			return n.Content[j+1].Content[i].Line
		}
	}
	return n.Line
}

// exampleValue is a valid value for a list field, for "must be a list" messages.
func exampleValue(field string) string {
	switch field {
	case "dietary_restrictions":
		return RestrictionNone
	case "cuisines":
		return "Korean"
	case "forbidden_ingredients":
		return CategoryMeat
	default:
		return "..."
	}
}

// kindName describes a node kind in messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// yamlLineError matches yaml.v3 syntax and type errors, which carry "line N: ...".
var yamlLineError = regexp.MustCompile(`line (\d+): (.*)`)

// yamlError rewrites a yaml.v3 error as "name:line: problem; fix", one line per problem.
func yamlError(name string, err error) error {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		m := yamlLineError.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		msg := m[2]
		fix := "fix the YAML syntax at that line (indentation, a missing ':' or unbalanced quotes/brackets)"
		if strings.Contains(msg, "not found in type") {
			fix = "remove the field or correct its spelling; known fields are " + knownPersonaFields
		} else if strings.Contains(msg, "already defined") {
			fix = "remove or rename one of the two keys"
		} else if strings.Contains(msg, "cannot unmarshal") {
			fix = "give the field a value of the right type (a string, or a list such as [none])"
		}
		lines = append(lines, fmt.Sprintf("%s:%s: %s; %s", name, m[1], msg, fix))
	}
	if len(lines) == 0 {
		return fmt.Errorf("%s: %w", name, err)
	}
	return errors.New(strings.Join(lines, "\n"))
}

// DefaultPersona returns one persona of the built-in personas.yaml.
func DefaultPersona(id string) (Persona, error) {
	ps, err := DefaultPersonas()
	if err != nil {
		return Persona{}, err
	}
	p, ok := PersonaByID(ps, id)
	if !ok {
		return Persona{}, fmt.Errorf("persona %q is not in %s; known personas: %s", id, DefaultPersonasPath, strings.Join(PersonaIDs(ps), ", "))
	}
	return p, nil
}

// PersonaByID returns the persona with the given id.
func PersonaByID(ps []Persona, id string) (Persona, bool) {
	i := slices.IndexFunc(ps, func(p Persona) bool { return p.ID == id })
	if i < 0 {
		return Persona{}, false
	}
	return ps[i], true
}

// PersonaIDs returns the ids in file order, the order pipelines iterate personas in.
func PersonaIDs(ps []Persona) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

// SelectPersonas returns the personas named by a comma-separated id list (--persona), in
// list order, or all of them for an empty list. An unknown id is an error naming the known
// ones; source names the personas file in it.
func SelectPersonas(all []Persona, list, source string) ([]Persona, error) {
	if strings.TrimSpace(list) == "" {
		return all, nil
	}
	var out []Persona
	for _, id := range strings.Split(list, ",") {
		p, ok := PersonaByID(all, strings.TrimSpace(id))
		if !ok {
			return nil, fmt.Errorf("--persona %q is not in %s; known personas: %s", id, source, strings.Join(PersonaIDs(all), ", "))
		}
		out = append(out, p)
	}
	return out, nil
}

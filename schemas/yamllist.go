package schemas

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// topLevelList finds the one top-level list `field:` of a decoded config document
// (personas.yaml, test_cases.yaml), with file:line errors that say how to fix the file.
// plural names the items in messages ("test cases"), item one of them ("case").
func topLevelList(doc *yaml.Node, name, field, plural, item string) (*yaml.Node, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s:1: no %s; the file must contain a top-level `%s:` list", name, plural, field)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the top level must be a mapping with a `%s:` list, found %s", name, root.Line, field, kindName(root))
	}
	var list *yaml.Node
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != field {
			errs = append(errs, fmt.Errorf("%s:%d: unknown top-level field %q; the only top-level field is `%s:`", name, k.Line, k.Value, field))
			continue
		}
		list = v
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	put := plural
	if item == "case" {
		put = "cases"
	}
	switch {
	case list == nil:
		return nil, fmt.Errorf("%s:%d: no `%s:` field; put the %s in a top-level `%s:` list", name, root.Line, field, put, field)
	case list.Kind == yaml.ScalarNode && list.Tag == "!!null":
		return nil, fmt.Errorf("%s:%d: the %s list is empty; add at least one %s", name, list.Line, field, item)
	case list.Kind != yaml.SequenceNode:
		return nil, fmt.Errorf("%s:%d: `%s:` must be a list (items start with \"- id: ...\"), found %s", name, list.Line, field, kindName(list))
	}
	return list, nil
}

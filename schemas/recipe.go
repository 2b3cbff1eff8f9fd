package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Ingredient is one line of a recipe's ingredient list.
type Ingredient struct {
	Name     string `json:"name"`
	Quantity string `json:"quantity"`
}

// Recipe is what every recipe model is asked to answer with: a single JSON object.
type Recipe struct {
	Title       string       `json:"title"`
	Cuisine     string       `json:"cuisine"`
	Servings    int          `json:"servings"`
	Ingredients []Ingredient `json:"ingredients"`
	Steps       []string     `json:"steps"`
	DietaryTags []string     `json:"dietary_tags"`
}

// ErrNoRecipeJSON is returned by ParseRecipe when the text holds no JSON object at all.
var ErrNoRecipeJSON = errors.New("no JSON object in model output")

// Validate reports the first structural problem of a recipe: the fields a cook (and the
// dietary-rules judge) cannot do without.
func (r Recipe) Validate() error {
	switch {
	case strings.TrimSpace(r.Title) == "":
		return errors.New("recipe: title is empty")
	case len(r.Ingredients) == 0:
		return errors.New("recipe: ingredients list is empty")
	case len(r.Steps) == 0:
		return errors.New("recipe: steps list is empty")
	case r.Servings < 0:
		return fmt.Errorf("recipe: servings is negative (%d)", r.Servings)
	}
	for i, in := range r.Ingredients {
		if strings.TrimSpace(in.Name) == "" {
			return fmt.Errorf("recipe: ingredient %d has an empty name", i)
		}
	}
	return nil
}

// IngredientNames returns the ingredient names in order.
func (r Recipe) IngredientNames() []string {
	names := make([]string, len(r.Ingredients))
	for i, in := range r.Ingredients {
		names[i] = in.Name
	}
	return names
}

// ParseRecipe extracts and validates the recipe JSON in a model's output. Models wrap JSON
// in prose or Markdown fences, so it decodes the first balanced {...} object it finds.
// Unknown fields are tolerated (a model may add "notes"); missing required ones are not.
func ParseRecipe(text string) (Recipe, error) {
	obj, err := firstJSONObject(text)
	if err != nil {
		return Recipe{}, err
	}
	var r Recipe
	dec := json.NewDecoder(bytes.NewReader(obj))
	if err := dec.Decode(&r); err != nil {
		return Recipe{}, fmt.Errorf("recipe JSON: %w", err)
	}
	if err := r.Validate(); err != nil {
		return Recipe{}, err
	}
	return r, nil
}

// firstJSONObject returns the first balanced JSON object in s, honouring strings and escapes
// so that braces inside string values do not confuse it.
func firstJSONObject(s string) ([]byte, error) {
	start := strings.IndexByte(s, '{')
	if start < 0 {
		return nil, ErrNoRecipeJSON
	}
	depth, inString, escaped := 0, false, false
	for i := start; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return []byte(s[start : i+1]), nil
			}
		}
	}
	return nil, fmt.Errorf("%w: unbalanced braces (output truncated?)", ErrNoRecipeJSON)
}

// CanonicalJSON renders a recipe the way prompts and fixtures show it: compact, fields in
// schema order.
func (r Recipe) CanonicalJSON() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // Recipe has only marshalable fields.
	}
	return string(b)
}

package evaljudge

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

func TestParseVerdict(t *testing.T) {
	good := verdictJSON("B", "high", 3, 9)
	tests := []struct {
		name string
		text string
		want string // "" for a valid verdict, else a substring of the error
	}{
		{"valid", good, ""},
		{"surrounding space and case", "\n " + strings.Replace(strings.Replace(good, `"B"`, `"b"`, 1), `"high"`, `"HIGH"`, 1) + " \n", ""},
		{"extra field ignored", strings.Replace(good, `"reasoning"`, `"notes": 1, "reasoning"`, 1), ""},
		{"truncated", good[:40], "not a JSON verdict object"},
		{"prose", "B is better.", "not a JSON verdict object"},
		{"trailing data", good + " {}", "trailing data"},
		{"empty scores_a", `{"scores_a": {}, "winner": "A", "confidence": "low", "reasoning": ""}`, "missing scores_a.persona_alignment"},
		{"missing criterion", strings.Replace(good, `"recipe_quality": 9, `, "", 1), "missing scores_b.recipe_quality"},
		{"score as string", strings.Replace(good, `"overall_suitability": 3`, `"overall_suitability": "3"`, 1), `scores_a.overall_suitability = "3" is not a number`},
		{"null score", strings.Replace(good, `"overall_suitability": 3`, `"overall_suitability": null`, 1), "is not a number"},
		{"score above 10", strings.Replace(good, `"persona_alignment": 9`, `"persona_alignment": 10.5`, 1), "scores_b: score persona_alignment = 10.5 outside [0, 10]"},
		{"negative score", strings.Replace(good, `"persona_alignment": 3`, `"persona_alignment": -1`, 1), "outside [0, 10]"},
		{"unknown winner", strings.Replace(good, `"winner": "B"`, `"winner": "C"`, 1), `winner "C" is not A, B or tie`},
		{"missing winner", strings.Replace(good, `"winner": "B", `, "", 1), "missing winner"},
		{"unknown confidence", strings.Replace(good, `"high"`, `"sure"`, 1), `confidence "sure"`},
		{"missing reasoning", strings.Replace(good, `, "reasoning": "because"`, "", 1), "missing reasoning"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseVerdict(tt.text)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want a verdict", err)
				}
				if v.Winner != WinnerB || v.Confidence != schemas.ConfidenceHigh || v.ScoresA.RecipeQuality != 3 || v.ScoresB.OverallSuitability != 9 || v.Reasoning != "because" {
					t.Errorf("got %+v, want B, high, A all 3, B all 9, \"because\"", v)
				}
				return
			}
			if !errors.Is(err, ErrBadVerdict) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrBadVerdict containing %q", err, tt.want)
			}
		})
	}
}

// TestVerdictSchemaMatchesParser: the schema sent to Gemini and the parser describe the same
// object, so an answer that follows the schema always parses.
func TestVerdictSchemaMatchesParser(t *testing.T) {
	s := VerdictSchema()
	if !slices.Equal(s.Required, verdictFields) || !slices.Equal(s.PropertyOrdering, verdictFields) || len(s.Properties) != len(verdictFields) {
		t.Fatalf("schema fields: got required %v, ordering %v, %d properties; want %v", s.Required, s.PropertyOrdering, len(s.Properties), verdictFields)
	}
	for _, side := range []string{"scores_a", "scores_b"} {
		sc := s.Properties[side]
		if !slices.Equal(sc.Required, Criteria) || len(sc.Properties) != len(Criteria) {
			t.Errorf("%s: got required %v, want %v", side, sc.Required, Criteria)
		}
		for _, c := range Criteria {
			if p := sc.Properties[c]; p == nil || *p.Minimum != 0 || *p.Maximum != 10 {
				t.Errorf("%s.%s: got %+v, want a number in [0, 10]", side, c, p)
			}
		}
	}
	if !slices.Equal(s.Properties["winner"].Enum, []string{"A", "B", "tie"}) || !slices.Equal(s.Properties["confidence"].Enum, []string{"high", "medium", "low"}) {
		t.Errorf("enums: got winner %v, confidence %v", s.Properties["winner"].Enum, s.Properties["confidence"].Enum)
	}
	// The criteria are exactly schemas.EvalScores' json names, in declaration order.
	b, err := json.Marshal(schemas.EvalScores{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	dec := json.NewDecoder(strings.NewReader(string(b)))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if k, ok := tok.(string); ok {
			names = append(names, k)
		}
	}
	if !slices.Equal(names, Criteria) {
		t.Errorf("EvalScores json names: got %v, want %v", names, Criteria)
	}
	// Every required field is needed by the parser: dropping one breaks the verdict.
	var full map[string]any
	if err := json.Unmarshal([]byte(verdictJSON("A", "low", 5, 5)), &full); err != nil {
		t.Fatal(err)
	}
	for _, f := range verdictFields {
		m := map[string]any{}
		for k, v := range full {
			if k != f {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		if _, err := ParseVerdict(string(b)); !errors.Is(err, ErrBadVerdict) {
			t.Errorf("without %s: got %v, want ErrBadVerdict", f, err)
		}
	}
}

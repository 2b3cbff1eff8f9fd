package chatml

import (
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

func TestPrompt(t *testing.T) {
	got := Prompt("sys", "make soup")
	want := "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nmake soup<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Errorf("Prompt = %q, want %q", got, want)
	}
	ex := schemas.DPOExample{ID: "1", PersonaID: "p", Prompt: got, Chosen: Completion(" {\"a\":1}\n"), Rejected: Completion("{}")}
	if err := ex.Validate(); err != nil {
		t.Errorf("formatted example does not validate: %v", err)
	}
	if ex.Chosen != "{\"a\":1}<|im_end|>" {
		t.Errorf("Completion = %q", ex.Chosen)
	}
}

func TestSystems(t *testing.T) {
	p := schemas.Persona{ID: "persona_b_indian_veg", Name: "Indian Vegetarian", Cuisines: []string{"Indian"},
		DietaryRestrictions: []string{"vegetarian"}, ForbiddenIngredients: []string{"meat", "seafood"},
		PreferredIngredients: []string{"paneer"}}
	strong, weak := StrongSystem(p), WeakSystem(p)
	for _, s := range []string{"vegetarian", "meat, seafood", "paneer", "Indian", RecipeFormat} {
		if !strings.Contains(strong, s) {
			t.Errorf("StrongSystem lacks %q:\n%s", s, strong)
		}
	}
	for _, s := range []string{"vegetarian", "meat", "paneer"} {
		if strings.Contains(weak, s) {
			t.Errorf("WeakSystem mentions constraint %q:\n%s", s, weak)
		}
	}
	if _, err := System("fancy", p); err == nil {
		t.Error("System(fancy) = nil error, want unknown style")
	}
	if s, _ := System(StyleNeutral, p); strings.Contains(s, "Indian") {
		t.Errorf("neutral system mentions the persona: %q", s)
	}
}

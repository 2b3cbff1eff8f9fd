package evaljudge_test

import (
	"context"
	"fmt"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge"
)

// The offline default: the rules judge, asked in both orders, on a constraint-stress case
// where the SFT model served chicken to the vegetarian persona and the DPO model did not.
func ExampleJudgeBothOrders() {
	p, _ := schemas.DefaultPersona("persona_b_indian_veg")
	c := schemas.TestCase{ID: "persona_b_indian_veg-constraint_stress-01", PersonaID: p.ID, Category: schemas.CategoryConstraintStress,
		Request: "Create an Indian dinner using: chicken thighs, plain yogurt, garam masala, and fresh ginger."}
	sft := `{"title": "Chicken Curry", "cuisine": "Indian", "servings": 2,
	  "ingredients": [{"name": "chicken thighs", "quantity": "500 g"}, {"name": "plain yogurt", "quantity": "100 g"}],
	  "steps": ["Marinate.", "Simmer."]}`
	dpo := `{"title": "Paneer Curry", "cuisine": "Indian", "servings": 2,
	  "ingredients": [{"name": "paneer", "quantity": "250 g"}, {"name": "plain yogurt", "quantity": "100 g"}],
	  "steps": ["Marinate.", "Simmer."]}`

	out, err := evaljudge.JudgeBothOrders(context.Background(), evaljudge.NewRulesJudge(nil), p, c, sft, dpo)
	if err != nil {
		panic(err)
	}
	r := out.Result
	fmt.Println(r.Winner, r.Confidence, r.OrderAgreement, r.JudgeModel)
	fmt.Println(r.SFTViolations)
	// Output:
	// dpo high true rules
	// [vegetarian: chicken thighs (meat) forbidden: chicken thighs (meat)]
}

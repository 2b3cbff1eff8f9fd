package evaljudge

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// RulesModel names the dietary-rules judge in Verdict.Model and EvalResult.JudgeModel, as
// label.RulesModel does for preference pairs.
const RulesModel = "rules"

// Rules-judge constants.
const (
	// TieEpsilon is the band of score totals (out of 50) within which two recipes with the
	// same standing on hard constraints tie; see rules.TieEpsilon.
	TieEpsilon = rules.TieEpsilon
	// HighMargin and MediumMargin are the total-score margins (out of 50) for a high and a
	// medium confidence win; a win on hard constraints is always high.
	HighMargin   = 5.0
	MediumMargin = 2.0

	// Recipe quality/structure: a parseable recipe (title, ingredients, steps) starts at
	// qualityBase and earns qualityPoint for each of: a cuisine, a serving count, at least
	// qualityMinIngredients distinct ingredients, a quantity on every ingredient, at least
	// qualityMinSteps steps; it loses qualityRepeat per ingredient line that repeats one
	// listed above it (rules.Repeats), down to 0.
	qualityBase           = 5.0
	qualityPoint          = 1.0
	qualityRepeat         = 1.0
	qualityMinIngredients = 4
	qualityMinSteps       = 3
)

// RulesJudge is the deterministic offline judge: scores from the dietary-rules engine, the
// same answer for the same recipes every time, symmetric in A and B (so both judging orders
// always agree), and no calls.
type RulesJudge struct {
	Engine *rules.Engine
}

// NewRulesJudge returns a RulesJudge over e, or over the embedded taxonomy when e is nil.
func NewRulesJudge(e *rules.Engine) RulesJudge {
	if e == nil {
		e = rules.New()
	}
	return RulesJudge{Engine: e}
}

// RulesAssessment is what the rules judge sees in one recipe.
type RulesAssessment struct {
	Scores     schemas.EvalScores
	Violations []rules.Violation
	ParsedOK   bool
	ParseError string
}

// RulesScores maps the rules engine's view of one recipe onto the five evaluation criteria,
// deterministically:
//
//   - persona_alignment = rules cuisine_alignment (cuisine label + signature ingredients);
//   - constraint_compliance = the lower of rules dietary_compliance and forbidden_avoided,
//     so one forbidden ingredient costs as much here as in the worse of the two;
//   - preferred_ingredients = rules persona_match (7/10 preferred-ingredient overlap, 3/10
//     flavour notes met; the engine does not expose the overlap alone);
//   - recipe_quality = structure: 5 for a parseable recipe plus 1 each for a cuisine, a
//     serving count, ≥ 4 distinct ingredients, a quantity on every ingredient and ≥ 3
//     steps, less 1 per repeated ingredient line (floor 0);
//   - overall_suitability = the mean of the four above, capped at constraint_compliance
//     when the recipe breaks a hard constraint.
//
// An output that is not a parseable recipe (schemas.ParseRecipe) scores 0 on every
// criterion: nothing in it can be cooked, checked or credited.
func RulesScores(e *rules.Engine, text string, p schemas.Persona) RulesAssessment {
	r, err := schemas.ParseRecipe(text)
	if err != nil {
		return RulesAssessment{ParseError: err.Error()}
	}
	vs := e.Check(r, p)
	c := e.Score(r, p)
	s := schemas.EvalScores{
		PersonaAlignment:     c.CuisineAlignment,
		ConstraintCompliance: math.Min(c.DietaryCompliance, c.ForbiddenAvoided),
		PreferredIngredients: c.PersonaMatch,
		RecipeQuality:        structureScore(r),
	}
	s.OverallSuitability = (s.PersonaAlignment + s.ConstraintCompliance + s.PreferredIngredients + s.RecipeQuality) / 4
	if len(vs) > 0 {
		s.OverallSuitability = math.Min(s.OverallSuitability, s.ConstraintCompliance)
	}
	return RulesAssessment{Scores: s, Violations: vs, ParsedOK: true}
}

// structureScore implements the recipe_quality criterion (see RulesScores) for a recipe
// that passed schemas.Recipe.Validate.
func structureScore(r schemas.Recipe) float64 {
	q, repeats := qualityBase, rules.Repeats(r)
	allQuantities := true
	for _, in := range r.Ingredients {
		allQuantities = allQuantities && strings.TrimSpace(in.Quantity) != ""
	}
	for _, ok := range []bool{
		strings.TrimSpace(r.Cuisine) != "",
		r.Servings > 0,
		len(r.Ingredients)-repeats >= qualityMinIngredients,
		allQuantities,
		len(r.Steps) >= qualityMinSteps,
	} {
		if ok {
			q += qualityPoint
		}
	}
	return math.Max(0, q-qualityRepeat*float64(repeats))
}

// Total is the sum of the five scores (out of 50).
func Total(s schemas.EvalScores) float64 {
	return s.PersonaAlignment + s.ConstraintCompliance + s.PreferredIngredients + s.RecipeQuality + s.OverallSuitability
}

// Judge implements Judge. Hard facts decide first: a parseable recipe beats an unparseable
// one, then fewer rule violations win; otherwise the higher total wins unless the totals
// are within TieEpsilon. Confidence is high for a win on parsing or violations, else by
// the total margin (≥ HighMargin high, ≥ MediumMargin medium, below low); a tie is low.
func (j RulesJudge) Judge(ctx context.Context, r Request) (Verdict, error) {
	if err := ctx.Err(); err != nil {
		return Verdict{Model: RulesModel}, err
	}
	e := j.Engine
	if e == nil {
		e = rules.New()
	}
	a, b := RulesScores(e, r.RecipeA, r.Persona), RulesScores(e, r.RecipeB, r.Persona)
	v := Verdict{ScoresA: a.Scores, ScoresB: b.Scores, Model: RulesModel, Confidence: schemas.ConfidenceHigh}
	d := Total(a.Scores) - Total(b.Scores)
	switch {
	case a.ParsedOK != b.ParsedOK:
		v.Winner = pickAB(a.ParsedOK)
	case len(a.Violations) != len(b.Violations):
		v.Winner = pickAB(len(a.Violations) < len(b.Violations))
	case math.Abs(d) <= TieEpsilon:
		v.Winner, v.Confidence = WinnerTie, schemas.ConfidenceLow
	default:
		v.Winner = pickAB(d > 0)
		switch m := math.Abs(d); {
		case m >= HighMargin:
			v.Confidence = schemas.ConfidenceHigh
		case m >= MediumMargin:
			v.Confidence = schemas.ConfidenceMedium
		default:
			v.Confidence = schemas.ConfidenceLow
		}
	}
	v.Reasoning = rulesReasoning(v.Winner, a, b)
	return v, nil
}

func pickAB(a bool) string {
	if a {
		return WinnerA
	}
	return WinnerB
}

// rulesReasoning explains a rules verdict in one sentence.
func rulesReasoning(w string, a, b RulesAssessment) string {
	desc := func(name string, x RulesAssessment) string {
		switch {
		case !x.ParsedOK:
			return name + " is not a parseable recipe (" + x.ParseError + ")"
		case len(x.Violations) > 0:
			return name + " breaks " + strings.Join(rules.Strings(x.Violations), ", ")
		}
		return name + " keeps every constraint"
	}
	ta, tb := Total(a.Scores), Total(b.Scores)
	switch {
	case a.ParsedOK != b.ParsedOK || len(a.Violations) != len(b.Violations):
		return desc("A", a) + "; " + desc("B", b)
	case w == WinnerTie:
		return fmt.Sprintf("%s; %s; they score alike (%.1f vs %.1f of 50)", desc("A", a), desc("B", b), ta, tb)
	}
	return fmt.Sprintf("%s; %s; %s fits the persona better (%.1f vs %.1f of 50)", desc("A", a), desc("B", b), w, ta, tb)
}

package evaljudge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// Outcome is one test case judged in both orders.
type Outcome struct {
	// Result is the row for reports and BigQuery. RunID and RunDate are left for the job to
	// set. When judging failed, Result.Error says why and the verdict fields are empty.
	Result schemas.EvalResult
	// SFTFirst is the verdict with A = SFT and B = DPO, DPOFirst the one with A = DPO and
	// B = SFT; nil when that order failed.
	SFTFirst, DPOFirst *Verdict
	// Err is the judging error behind Result.Error; nil when the case was judged.
	Err error
	// CacheHit is true when both orders were answered without a call.
	CacheHit bool
}

// now stamps EvalResult.JudgedAt; tests replace it.
var now = func() time.Time { return time.Now().UTC() }

// JudgeBothOrders asks j about the case twice, once with (A = SFT, B = DPO) and once with
// (A = DPO, B = SFT), which cancels a judge's position bias:
//
//   - a model wins only when both orders pick it; both orders saying tie is a tie; any
//     disagreement is a tie with low confidence and OrderAgreement false;
//   - an agreed win or tie takes the lower of the two confidences;
//   - each model's scores are the mean of its scores in the two orders;
//   - tokens are summed over both orders (repairs included), also when one fails.
//
// The second order is not asked when the first fails: the row is an error row either way.
//
// Rule violations and parsed-ok flags of both outputs come from the rules engine whatever
// the judge, so the violation rates of SFT and DPO are comparable across judges.
//
// A failed order (after the Caller's retries and the Gemini judge's repair) makes the whole
// row an error row: Result.Error holds the class (llm.Classify) and the reason, and the row
// is never silently dropped. The error return is non-nil only when ctx ended; the outcome
// then still carries the error row, and the caller chooses between writing it and failing.
func JudgeBothOrders(ctx context.Context, j Judge, p schemas.Persona, c schemas.TestCase, sftText, dpoText string) (Outcome, error) {
	eng := rules.New()
	if rj, ok := j.(RulesJudge); ok && rj.Engine != nil {
		eng = rj.Engine
	}
	sft, dpo := RulesScores(eng, sftText, p), RulesScores(eng, dpoText, p)
	res := schemas.EvalResult{
		CaseID: c.ID, PersonaID: c.PersonaID, Category: c.Category, Request: c.Request,
		SFTOutput: sftText, DPOOutput: dpoText,
		SFTViolations: rules.Strings(sft.Violations), DPOViolations: rules.Strings(dpo.Violations),
		SFTParsedOK: sft.ParsedOK, DPOParsedOK: dpo.ParsedOK,
		JudgedAt: now().Format(time.RFC3339),
	}
	out := Outcome{}

	v1, err1 := j.Judge(ctx, Request{Persona: p, Case: c, RecipeA: sftText, RecipeB: dpoText})
	if err1 == nil {
		err1 = checkVerdict(v1)
	}
	var v2 Verdict
	var err2 error
	if err1 == nil { // the row fails with either order: do not pay for the second
		v2, err2 = j.Judge(ctx, Request{Persona: p, Case: c, RecipeA: dpoText, RecipeB: sftText})
		if err2 == nil {
			err2 = checkVerdict(v2)
		}
	}
	res.PromptTokens = v1.PromptTokens + v2.PromptTokens
	res.CompletionTokens = v1.CompletionTokens + v2.CompletionTokens
	res.JudgeModel = firstNonEmpty(v1.Model, v2.Model)
	if err1 == nil {
		out.SFTFirst = &v1
	}
	if err2 == nil {
		out.DPOFirst = &v2
	}
	if err1 != nil || err2 != nil {
		var reasons []string
		if err1 != nil {
			reasons = append(reasons, "order A=SFT,B=DPO: "+llm.Classify(err1)+": "+err1.Error())
		}
		if err2 != nil {
			reasons = append(reasons, "order A=DPO,B=SFT: "+llm.Classify(err2)+": "+err2.Error())
		}
		res.Error = strings.Join(reasons, "; ")
		out.Err = errors.Join(err1, err2)
		out.Result = res
		if ctx.Err() != nil {
			return out, fmt.Errorf("judge case %s: %w", c.ID, ctx.Err())
		}
		return out, nil
	}
	out.CacheHit = v1.CacheHit && v2.CacheHit

	w1, w2 := modelOf(v1.Winner, orderSFTFirst), modelOf(v2.Winner, orderDPOFirst)
	res.SFTScores = meanScores(v1.ScoresA, v2.ScoresB)
	res.DPOScores = meanScores(v1.ScoresB, v2.ScoresA)
	if w1 == w2 {
		res.Winner, res.OrderAgreement = w1, true
		res.Confidence = lowerConfidence(v1.Confidence, v2.Confidence)
	} else {
		res.Winner, res.Confidence = schemas.WinnerTie, schemas.ConfidenceLow
	}
	res.Reasoning = fmt.Sprintf("A=SFT,B=DPO → %s (%s): %s | A=DPO,B=SFT → %s (%s): %s",
		w1, v1.Confidence, v1.Reasoning, w2, v2.Confidence, v2.Reasoning)
	out.Result = res
	return out, nil
}

// The two judging orders, for modelOf.
const (
	orderSFTFirst = "sft_first" // A = SFT, B = DPO
	orderDPOFirst = "dpo_first" // A = DPO, B = SFT
)

// checkVerdict vets a verdict from any Judge before it is counted: a known winner and
// confidence, every score in [0, 10].
func checkVerdict(v Verdict) error {
	var errs []error
	if v.Winner != WinnerA && v.Winner != WinnerB && v.Winner != WinnerTie {
		errs = append(errs, fmt.Errorf("winner %q is not A, B or tie", v.Winner))
	}
	if _, ok := confidenceRank[v.Confidence]; !ok {
		errs = append(errs, fmt.Errorf("confidence %q is not high, medium or low", v.Confidence))
	}
	if err := v.ScoresA.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("scores_a: %w", err))
	}
	if err := v.ScoresB.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("scores_b: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %v", ErrBadVerdict, err)
	}
	return nil
}

// modelOf maps a positional winner (A, B, tie) of one order to the model it names.
func modelOf(winner, order string) string {
	a, b := schemas.WinnerSFT, schemas.WinnerDPO
	if order == orderDPOFirst {
		a, b = b, a
	}
	switch winner {
	case WinnerA:
		return a
	case WinnerB:
		return b
	}
	return schemas.WinnerTie
}

// confidenceRank orders confidences from weakest to strongest.
var confidenceRank = map[string]int{schemas.ConfidenceLow: 0, schemas.ConfidenceMedium: 1, schemas.ConfidenceHigh: 2}

// lowerConfidence returns the weaker of two confidences.
func lowerConfidence(a, b string) string {
	if confidenceRank[a] <= confidenceRank[b] {
		return a
	}
	return b
}

// meanScores averages two judgements of the same recipe.
func meanScores(x, y schemas.EvalScores) schemas.EvalScores {
	return schemas.EvalScores{
		PersonaAlignment:     (x.PersonaAlignment + y.PersonaAlignment) / 2,
		ConstraintCompliance: (x.ConstraintCompliance + y.ConstraintCompliance) / 2,
		PreferredIngredients: (x.PreferredIngredients + y.PreferredIngredients) / 2,
		RecipeQuality:        (x.RecipeQuality + y.RecipeQuality) / 2,
		OverallSuitability:   (x.OverallSuitability + y.OverallSuitability) / 2,
	}
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}

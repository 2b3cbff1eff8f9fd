// Package label turns a prompt's two variants into a preference pair (stage 2): it asks a
// judge (an LLM through llm.PairJudge, or the dietary-rules judge), and holds every LLM
// verdict against the rules engine — the veto — so that no pair teaches a persona to prefer a
// recipe that breaks its hard constraints over one that keeps them.
package label

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// Veto modes (--veto): what to do when the LLM prefers a recipe that breaks a hard
// constraint over one that keeps them all.
const (
	VetoFlip = "flip" // swap chosen and rejected, mark the pair Vetoed (default)
	VetoDrop = "drop" // dead-letter the pair with reason "vetoed"
	VetoOff  = "off"  // keep the LLM's verdict
)

// ValidateVeto checks a --veto value.
func ValidateVeto(v string) error {
	switch v {
	case VetoFlip, VetoDrop, VetoOff:
		return nil
	}
	return fmt.Errorf("--veto=%q: use %s, %s or %s", v, VetoFlip, VetoDrop, VetoOff)
}

// Labeler labels pairs. Judge nil means the rules judge labels alone.
type Labeler struct {
	Judge llm.PairJudge
	Rules *rules.Engine
	Veto  string
}

// Result is the outcome of labelling one prompt: a pair, or a dead letter with its reason.
// Usage counts the judge's tokens either way.
type Result struct {
	Pair             *schemas.PreferencePair
	Dead             *schemas.DeadLetter
	PromptTokens     int64
	CompletionTokens int64
	JudgeModel       string
	Called           bool // the LLM judge was asked (not just the rules)
	CacheHit         bool // ... and answered from the call cache
}

// Label labels the two variants of one prompt. It returns an error only when ctx ends;
// every other failure is a dead letter.
func (l *Labeler) Label(ctx context.Context, p schemas.Persona, a, b schemas.Variant) (Result, error) {
	dead := func(reason, detail string) (Result, error) {
		payload, _ := json.Marshal(map[string]any{"A": a, "B": b})
		return Result{Dead: &schemas.DeadLetter{
			Stage: schemas.StageLabel, PersonaID: a.PersonaID, RecordID: a.PromptID,
			Reason: reason, Detail: detail, Payload: string(payload),
		}}, nil
	}
	ra, errA := schemas.ParseRecipe(a.Text)
	rb, errB := schemas.ParseRecipe(b.Text)
	if errA != nil || errB != nil {
		var which []string
		if errA != nil {
			which = append(which, "A: "+errA.Error())
		}
		if errB != nil {
			which = append(which, "B: "+errB.Error())
		}
		return dead(schemas.ReasonUnparseable, strings.Join(which, "; "))
	}
	rulesWinner, sa, sb, va, vb := l.Rules.Compare(ra, rb, p)
	if len(va) > 0 && len(vb) > 0 {
		return dead(schemas.ReasonBothViolate, fmt.Sprintf("A: %s; B: %s", joinViolations(va), joinViolations(vb)))
	}

	verdict := llm.PairVerdict{Winner: rulesWinner, ScoresA: sa, ScoresB: sb, Confidence: "high", Model: RulesModel,
		Reasoning: rulesReasoning(rulesWinner, va, vb, rules.Standing(sa, ra), rules.Standing(sb, rb), rules.Repeats(ra), rules.Repeats(rb))}
	if l.Judge != nil {
		v, err := l.Judge.JudgePair(ctx, llm.PairRequest{Persona: p, Request: a.User, RecipeA: a.Text, RecipeB: b.Text})
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		if err != nil {
			r, _ := dead(schemas.ReasonJudgeFailed, llm.Classify(err)+": "+err.Error())
			if errors.Is(err, llm.ErrBadVerdict) {
				r, _ = dead(schemas.ReasonJudgeBadVerdict, err.Error())
			}
			r.Called = true
			return r, nil
		}
		verdict = v
	}
	res := Result{PromptTokens: verdict.PromptTokens, CompletionTokens: verdict.CompletionTokens, JudgeModel: verdict.Model,
		Called: l.Judge != nil, CacheHit: verdict.CacheHit}
	if verdict.Winner != schemas.VariantA && verdict.Winner != schemas.VariantB {
		return res.withDead(dead(schemas.ReasonTie, fmt.Sprintf("%s saw no winner: %s", verdict.Model, verdict.Reasoning)))
	}

	winner, vetoed := verdict.Winner, false
	winnerBreaks := (winner == schemas.VariantA && len(va) > 0) || (winner == schemas.VariantB && len(vb) > 0)
	if l.Judge != nil && winnerBreaks {
		switch l.Veto {
		case VetoDrop:
			return res.withDead(dead(schemas.ReasonVetoed, fmt.Sprintf("%s preferred %s, which breaks %s", verdict.Model, winner, joinViolations(pick(winner, va, vb)))))
		case VetoFlip:
			winner, vetoed = other(winner), true
		}
	}

	agreement := schemas.AgreementNA
	if l.Judge != nil && rulesWinner != schemas.RulesTie {
		agreement = schemas.AgreementDisagree
		if rulesWinner == verdict.Winner {
			agreement = schemas.AgreementAgree
		}
	}
	chosen, rejected := a, b
	cs, rs := verdict.ScoresA, verdict.ScoresB
	cv, rv := va, vb
	if winner == schemas.VariantB {
		chosen, rejected, cs, rs, cv, rv = b, a, rs, cs, rv, cv
	}
	res.Pair = &schemas.PreferencePair{
		PairID: a.PromptID, PersonaID: a.PersonaID, PromptID: a.PromptID, Prompt: a.User,
		Chosen: chosen.Text, Rejected: rejected.Text, ChosenVariant: winner,
		JudgeModel: verdict.Model, JudgeWinner: verdict.Winner,
		ChosenScores: cs, RejectedScores: rs, Confidence: verdict.Confidence, Reasoning: verdict.Reasoning,
		RulesVerdict: rulesWinner, ChosenViolations: violationStrings(cv), RejectedViolations: violationStrings(rv),
		Agreement: agreement, Vetoed: vetoed,
	}
	if err := res.Pair.Validate(); err != nil {
		res.Pair = nil
		return res.withDead(dead(schemas.ReasonJudgeBadVerdict, err.Error()))
	}
	return res, nil
}

// withDead keeps r's usage and takes d's dead letter.
func (r Result) withDead(d Result, _ error) (Result, error) {
	r.Dead = d.Dead
	return r, nil
}

// RulesModel names the dietary-rules judge in PreferencePair.JudgeModel.
const RulesModel = "rules"

func other(w string) string {
	if w == schemas.VariantA {
		return schemas.VariantB
	}
	return schemas.VariantA
}

func pick(w string, va, vb []rules.Violation) []rules.Violation {
	if w == schemas.VariantA {
		return va
	}
	return vb
}

func violationStrings(vs []rules.Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

func joinViolations(vs []rules.Violation) string {
	if len(vs) == 0 {
		return "nothing"
	}
	return strings.Join(violationStrings(vs), ", ")
}

func rulesReasoning(w string, va, vb []rules.Violation, sa, sb float64, repA, repB int) string {
	switch {
	case len(va) > 0:
		return "A breaks " + joinViolations(va) + "; B keeps every constraint"
	case len(vb) > 0:
		return "B breaks " + joinViolations(vb) + "; A keeps every constraint"
	}
	rep := ""
	if repA > 0 || repB > 0 {
		rep = fmt.Sprintf(", repeated ingredients %d vs %d", repA, repB)
	}
	if w == schemas.RulesTie {
		return fmt.Sprintf("both keep every constraint and score alike (%.1f vs %.1f%s)", sa, sb, rep)
	}
	return fmt.Sprintf("both keep every constraint; %s fits the persona better (%.1f vs %.1f%s)", w, sa, sb, rep)
}

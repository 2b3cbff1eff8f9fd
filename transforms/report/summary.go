// Package report turns judged evaluation rows (schemas.EvalResult) into the three reports of
// PIPELINE.md §5.4: reports/summary_stats.json (Summary, the aggregates), reports/
// detailed_results.json (every row, error rows included) and reports/evaluation_report.html
// (one self-contained page with inline SVG charts and a filterable table of cases).
//
// Every rate in a Block is computed over the block's judged rows (N), so the numbers in one
// block describe the same cases; rows whose judging failed are counted in Errors and shown in
// the detailed reports, never as wins, losses or ties. A rate whose denominator is zero is
// null in JSON (a nil pointer), never 0.
package report

import (
	"slices"
	"strings"
	"time"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/label"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// SchemaVersion is the version of the summary_stats.json and detailed_results.json layouts;
// it changes when a field is renamed or its meaning changes, not when one is added.
const SchemaVersion = 1

// RulesJudge is the judge model name of the offline dietary-rules judge (--judge=rules). Its
// summaries have no llm_vs_rules_agreement (it would agree with itself) and cost nothing.
const RulesJudge = label.RulesModel

// UnknownGroup is the per_persona / per_category key of rows with an empty persona or category.
const UnknownGroup = "unknown"

// Summary is reports/summary_stats.json: the aggregates of one evaluation run, overall and
// broken down by persona and by test-case category (PIPELINE.md §5.3).
type Summary struct {
	// SchemaVersion is SchemaVersion at the time of writing.
	SchemaVersion int `json:"schema_version"`
	// RunID is the rows' run id; rows from several runs give their distinct ids joined by ",".
	RunID string `json:"run_id"`
	// JudgeModel is the judge the verdicts came from ("gemini-2.0-flash", or "rules"); it also
	// prices the tokens.
	JudgeModel string `json:"judge_model"`
	// GeneratedAt is when the summary was computed, RFC 3339 in UTC.
	GeneratedAt string `json:"generated_at"`
	// Overall aggregates every row.
	Overall Block `json:"overall"`
	// PerPersona aggregates the rows of each persona id.
	PerPersona map[string]Block `json:"per_persona"`
	// PerCategory aggregates the rows of each test-case category (basic_alignment,
	// constraint_stress, edge_case, cross_persona).
	PerCategory map[string]Block `json:"per_category"`
}

// Block is the aggregate of a set of rows. "Judged" rows are those without an error and with
// a winner of dpo, sft or tie; every rate below is over the N judged rows unless it says
// otherwise, and is null when its denominator is 0.
type Block struct {
	// N is the number of judged rows (error rows excluded): the denominator of the win rate.
	N int `json:"n"`
	// Errors counts rows whose judging failed after retries (EvalResult.Error set) or whose
	// verdict names no known winner. They are reported, not counted as wins, losses or ties.
	Errors int `json:"errors"`
	// Wins, Losses and Ties count judged rows won by DPO, won by SFT, and tied. A tie
	// includes a disagreement between the two judging orders.
	Wins   int `json:"wins"`
	Losses int `json:"losses"`
	Ties   int `json:"ties"`
	// WinRate is Wins / N (DPO wins over all judged cases, ties in the denominator).
	WinRate *float64 `json:"win_rate"`
	// LossRate is Losses / N.
	LossRate *float64 `json:"loss_rate"`
	// TieRate is Ties / N.
	TieRate *float64 `json:"tie_rate"`
	// Confidence is the verdicts' confidence distribution over all judged rows and over DPO wins.
	Confidence ConfidenceDist `json:"confidence"`
	// HighConfidenceWinRate is DPO wins with high confidence / N (PIPELINE.md §5.5 "High
	// Confidence Wins: 68.3%" is 82/120), not a share of the wins.
	HighConfidenceWinRate *float64 `json:"high_confidence_win_rate"`
	// OrderAgreementRate is the share of judged rows whose A/B and B/A judgements picked the
	// same model (EvalResult.OrderAgreement).
	OrderAgreementRate *float64 `json:"order_agreement_rate"`
	// Parsed counts judged rows whose output parsed into a recipe, per model.
	Parsed ModelCounts `json:"parsed"`
	// ParseRate is Parsed / N per model: the complement is the share of outputs the rules
	// engine could not check at all.
	ParseRate ModelRates `json:"parse_rate"`
	// Violating counts judged rows whose output parsed and broke at least one dietary rule
	// (a restriction or a forbidden ingredient, by the rules engine), per model.
	Violating ModelCounts `json:"violating"`
	// ViolationRate is Violating / Parsed per model: the share of checkable outputs with ≥1
	// violation. Unparsed outputs are in neither count (see ParseRate).
	ViolationRate ModelRates `json:"violation_rate"`
	// ViolationReduction is 1 − violation_rate.dpo / violation_rate.sft: 1 means DPO removed
	// every violation, 0 no change, negative that DPO violates more. Null when either rate is
	// null or the SFT rate is 0 (no violations to reduce).
	ViolationReduction *float64 `json:"violation_reduction"`
	// MeanScores is the mean of the judge's five 0–10 scores per model over the judged rows
	// (unparsed outputs included, as the judge scored them). Null when N = 0.
	MeanScores MeanScores `json:"mean_scores"`
	// LLMVsRulesAgreement is, for an LLM judge, the share of rules-decisive rows on which the
	// verdict names the model the rules engine prefers. A row is rules-decisive when it is
	// judged, both outputs parsed, and their violation counts differ; the rules engine prefers
	// the output with fewer violations. A tie verdict on such a row is a disagreement. Null for
	// the rules judge (RulesJudge) and when no row is rules-decisive. This mirrors the
	// labeller's agree/disagree/n.a. in PreferencePair.Agreement.
	LLMVsRulesAgreement *float64 `json:"llm_vs_rules_agreement"`
	// LLMVsRulesCases is the number of rules-decisive rows (LLMVsRulesAgreement's denominator);
	// 0 for the rules judge.
	LLMVsRulesCases int `json:"llm_vs_rules_cases"`
	// Tokens are the judge's tokens over all rows, error rows included: failed judging spends
	// tokens too.
	Tokens Tokens `json:"tokens"`
	// EstimatedCostUSD is Tokens at the judge's list price (llm.EstimateCost); 0 for the rules
	// judge, null for a model without a known price.
	EstimatedCostUSD *float64 `json:"estimated_cost_usd"`
}

// ConfidenceDist is a confidence distribution over all judged rows and over DPO wins.
type ConfidenceDist struct {
	// All counts every judged row by its verdict's confidence.
	All ConfidenceCounts `json:"all"`
	// Wins counts DPO wins by confidence.
	Wins ConfidenceCounts `json:"wins"`
}

// ConfidenceCounts counts verdicts per confidence level; a row with another value is in none.
type ConfidenceCounts struct {
	High   int `json:"high"`
	Medium int `json:"medium"`
	Low    int `json:"low"`
}

// ModelCounts is a count per model.
type ModelCounts struct {
	SFT int `json:"sft"`
	DPO int `json:"dpo"`
}

// ModelRates is a rate in [0, 1] per model, null when its denominator is 0.
type ModelRates struct {
	SFT *float64 `json:"sft"`
	DPO *float64 `json:"dpo"`
}

// MeanScores are the per-criterion mean scores per model.
type MeanScores struct {
	SFT *schemas.EvalScores `json:"sft"`
	DPO *schemas.EvalScores `json:"dpo"`
}

// Tokens are judge token counts.
type Tokens struct {
	Prompt     int64 `json:"prompt"`
	Completion int64 `json:"completion"`
}

// now is replaced in tests.
var now = time.Now

// Summarize aggregates results judged by judgeModel (empty: the rows' own judge_model) into
// a Summary. Rows are not validated beyond what the Block documentation says: an error row
// or an unknown winner counts in Errors.
func Summarize(results []schemas.EvalResult, judgeModel string) Summary {
	if judgeModel == "" {
		for _, r := range results {
			if r.JudgeModel != "" {
				judgeModel = r.JudgeModel
				break
			}
		}
	}
	s := Summary{
		SchemaVersion: SchemaVersion,
		RunID:         runID(results),
		JudgeModel:    judgeModel,
		GeneratedAt:   now().UTC().Format(time.RFC3339),
		PerPersona:    map[string]Block{},
		PerCategory:   map[string]Block{},
	}
	all := &acc{}
	persona, category := map[string]*acc{}, map[string]*acc{}
	for _, r := range results {
		all.add(r)
		group(persona, orUnknown(r.PersonaID)).add(r)
		group(category, orUnknown(r.Category)).add(r)
	}
	s.Overall = all.block(judgeModel)
	for k, a := range persona {
		s.PerPersona[k] = a.block(judgeModel)
	}
	for k, a := range category {
		s.PerCategory[k] = a.block(judgeModel)
	}
	return s
}

func runID(results []schemas.EvalResult) string {
	var ids []string
	for _, r := range results {
		if r.RunID != "" && !slices.Contains(ids, r.RunID) {
			ids = append(ids, r.RunID)
		}
	}
	return strings.Join(ids, ",")
}

func orUnknown(k string) string {
	if k == "" {
		return UnknownGroup
	}
	return k
}

func group(m map[string]*acc, k string) *acc {
	a, ok := m[k]
	if !ok {
		a = &acc{}
		m[k] = a
	}
	return a
}

// acc accumulates the counts of one Block.
type acc struct {
	b                     Block
	highWins, agreeOrders int
	rulesAgree            int
	sftSum, dpoSum        schemas.EvalScores
}

// judged reports whether r counts in N: no error and a known winner.
func judged(r schemas.EvalResult) bool {
	if r.Error != "" {
		return false
	}
	switch r.Winner {
	case schemas.WinnerDPO, schemas.WinnerSFT, schemas.WinnerTie:
		return true
	}
	return false
}

func (a *acc) add(r schemas.EvalResult) {
	b := &a.b
	b.Tokens.Prompt += r.PromptTokens
	b.Tokens.Completion += r.CompletionTokens
	if !judged(r) {
		b.Errors++
		return
	}
	b.N++
	switch r.Winner {
	case schemas.WinnerDPO:
		b.Wins++
		b.Confidence.Wins.count(r.Confidence)
		if r.Confidence == schemas.ConfidenceHigh {
			a.highWins++
		}
	case schemas.WinnerSFT:
		b.Losses++
	case schemas.WinnerTie:
		b.Ties++
	}
	b.Confidence.All.count(r.Confidence)
	if r.OrderAgreement {
		a.agreeOrders++
	}
	if r.SFTParsedOK {
		b.Parsed.SFT++
		if len(r.SFTViolations) > 0 {
			b.Violating.SFT++
		}
	}
	if r.DPOParsedOK {
		b.Parsed.DPO++
		if len(r.DPOViolations) > 0 {
			b.Violating.DPO++
		}
	}
	if pref, ok := rulesPreference(r); ok {
		b.LLMVsRulesCases++
		if pref == r.Winner {
			a.rulesAgree++
		}
	}
	addScores(&a.sftSum, r.SFTScores)
	addScores(&a.dpoSum, r.DPOScores)
}

// rulesPreference is the model with fewer rules violations, when both outputs parsed and the
// counts differ.
func rulesPreference(r schemas.EvalResult) (winner string, decisive bool) {
	if !r.SFTParsedOK || !r.DPOParsedOK {
		return "", false
	}
	switch s, d := len(r.SFTViolations), len(r.DPOViolations); {
	case d < s:
		return schemas.WinnerDPO, true
	case s < d:
		return schemas.WinnerSFT, true
	}
	return "", false
}

func (c *ConfidenceCounts) count(confidence string) {
	switch confidence {
	case schemas.ConfidenceHigh:
		c.High++
	case schemas.ConfidenceMedium:
		c.Medium++
	case schemas.ConfidenceLow:
		c.Low++
	}
}

func addScores(sum *schemas.EvalScores, s schemas.EvalScores) {
	sum.PersonaAlignment += s.PersonaAlignment
	sum.ConstraintCompliance += s.ConstraintCompliance
	sum.PreferredIngredients += s.PreferredIngredients
	sum.RecipeQuality += s.RecipeQuality
	sum.OverallSuitability += s.OverallSuitability
}

func meanScores(sum schemas.EvalScores, n int) *schemas.EvalScores {
	if n == 0 {
		return nil
	}
	f := float64(n)
	return &schemas.EvalScores{
		PersonaAlignment:     sum.PersonaAlignment / f,
		ConstraintCompliance: sum.ConstraintCompliance / f,
		PreferredIngredients: sum.PreferredIngredients / f,
		RecipeQuality:        sum.RecipeQuality / f,
		OverallSuitability:   sum.OverallSuitability / f,
	}
}

func (a *acc) block(judgeModel string) Block {
	b := a.b
	b.WinRate = ratio(b.Wins, b.N)
	b.LossRate = ratio(b.Losses, b.N)
	b.TieRate = ratio(b.Ties, b.N)
	b.HighConfidenceWinRate = ratio(a.highWins, b.N)
	b.OrderAgreementRate = ratio(a.agreeOrders, b.N)
	b.ParseRate = ModelRates{SFT: ratio(b.Parsed.SFT, b.N), DPO: ratio(b.Parsed.DPO, b.N)}
	b.ViolationRate = ModelRates{SFT: ratio(b.Violating.SFT, b.Parsed.SFT), DPO: ratio(b.Violating.DPO, b.Parsed.DPO)}
	b.ViolationReduction = Reduction(b.ViolationRate.SFT, b.ViolationRate.DPO)
	b.MeanScores = MeanScores{SFT: meanScores(a.sftSum, b.N), DPO: meanScores(a.dpoSum, b.N)}
	if judgeModel == RulesJudge {
		b.LLMVsRulesCases = 0
	} else {
		b.LLMVsRulesAgreement = ratio(a.rulesAgree, b.LLMVsRulesCases)
	}
	b.EstimatedCostUSD = cost(judgeModel, b.Tokens)
	return b
}

// Reduction is the relative violation reduction 1 − dpo/sft; nil when either rate is nil or
// sft is 0.
func Reduction(sft, dpo *float64) *float64 {
	if sft == nil || dpo == nil || *sft == 0 {
		return nil
	}
	r := 1 - *dpo / *sft
	return &r
}

func cost(judgeModel string, t Tokens) *float64 {
	if judgeModel == RulesJudge {
		zero := 0.0
		return &zero
	}
	usd, known := llm.EstimateCost(judgeModel, t.Prompt, t.Completion)
	if !known {
		return nil
	}
	return &usd
}

func ratio(num, den int) *float64 {
	if den == 0 {
		return nil
	}
	r := float64(num) / float64(den)
	return &r
}

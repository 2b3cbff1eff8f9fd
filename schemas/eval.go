package schemas

import (
	"errors"
	"fmt"
)

// Evaluation test-case categories (PIPELINE.md §5.2): 8 + 6 + 4 + 2 per persona.
const (
	CategoryBasicAlignment   = "basic_alignment"
	CategoryConstraintStress = "constraint_stress"
	CategoryEdgeCase         = "edge_case"
	CategoryCrossPersona     = "cross_persona"
)

// Eval winners and confidences.
const (
	WinnerDPO = "dpo"
	WinnerSFT = "sft"
	WinnerTie = "tie"

	ConfidenceHigh   = "high"
	ConfidenceMedium = "medium"
	ConfidenceLow    = "low"
)

// EvalScores are a judge's five 0–10 scores for one recipe (PIPELINE.md §5.3).
type EvalScores struct {
	PersonaAlignment     float64 `parquet:"persona_alignment" json:"persona_alignment" bigquery:"persona_alignment"`
	ConstraintCompliance float64 `parquet:"constraint_compliance" json:"constraint_compliance" bigquery:"constraint_compliance"`
	PreferredIngredients float64 `parquet:"preferred_ingredients" json:"preferred_ingredients" bigquery:"preferred_ingredients"`
	RecipeQuality        float64 `parquet:"recipe_quality" json:"recipe_quality" bigquery:"recipe_quality"`
	OverallSuitability   float64 `parquet:"overall_suitability" json:"overall_suitability" bigquery:"overall_suitability"`
}

// Validate checks every score lies in [0, 10].
func (s EvalScores) Validate() error {
	for name, v := range map[string]float64{
		"persona_alignment": s.PersonaAlignment, "constraint_compliance": s.ConstraintCompliance,
		"preferred_ingredients": s.PreferredIngredients, "recipe_quality": s.RecipeQuality,
		"overall_suitability": s.OverallSuitability,
	} {
		if !(v >= 0 && v <= 10) {
			return fmt.Errorf("score %s = %g outside [0, 10]", name, v)
		}
	}
	return nil
}

// TestCase is one evaluation case of test_cases.yaml.
type TestCase struct {
	ID        string   `yaml:"id" json:"id"`
	PersonaID string   `yaml:"persona_id" json:"persona_id"`
	Category  string   `yaml:"category" json:"category"`
	Request   string   `yaml:"request" json:"request"` // persona-neutral, as the trainer saw
	Pantry    []string `yaml:"pantry" json:"pantry"`
	Notes     string   `yaml:"notes,omitempty" json:"notes,omitempty"`
}

// EvalResult is one judged case: both models' outputs and the verdict (reports/ and the
// BigQuery table). Winner counts a model only when both judging orders agree.
type EvalResult struct {
	RunID      string     `parquet:"run_id" json:"run_id" bigquery:"run_id"`
	RunDate    string     `parquet:"run_date" json:"run_date" bigquery:"run_date"` // YYYY-MM-DD, the partition
	CaseID     string     `parquet:"case_id" json:"case_id" bigquery:"case_id"`
	PersonaID  string     `parquet:"persona_id" json:"persona_id" bigquery:"persona_id"`
	Category   string     `parquet:"category" json:"category" bigquery:"category"`
	Request    string     `parquet:"request" json:"request" bigquery:"request"`
	SFTOutput  string     `parquet:"sft_output" json:"sft_output" bigquery:"sft_output"`
	DPOOutput  string     `parquet:"dpo_output" json:"dpo_output" bigquery:"dpo_output"`
	SFTScores  EvalScores `parquet:"sft_scores" json:"sft_scores" bigquery:"sft_scores"`
	DPOScores  EvalScores `parquet:"dpo_scores" json:"dpo_scores" bigquery:"dpo_scores"`
	Winner     string     `parquet:"winner" json:"winner" bigquery:"winner"`             // dpo, sft, tie
	Confidence string     `parquet:"confidence" json:"confidence" bigquery:"confidence"` // high, medium, low
	// OrderAgreement says whether the A/B and B/A judgements picked the same model.
	OrderAgreement bool     `parquet:"order_agreement" json:"order_agreement" bigquery:"order_agreement"`
	Reasoning      string   `parquet:"reasoning" json:"reasoning" bigquery:"reasoning"`
	JudgeModel     string   `parquet:"judge_model" json:"judge_model" bigquery:"judge_model"`
	SFTViolations  []string `parquet:"sft_violations,list" json:"sft_violations" bigquery:"sft_violations"`
	DPOViolations  []string `parquet:"dpo_violations,list" json:"dpo_violations" bigquery:"dpo_violations"`
	SFTParsedOK    bool     `parquet:"sft_parsed_ok" json:"sft_parsed_ok" bigquery:"sft_parsed_ok"`
	DPOParsedOK    bool     `parquet:"dpo_parsed_ok" json:"dpo_parsed_ok" bigquery:"dpo_parsed_ok"`
	// Error is set on a row whose judging failed after retries; such rows are reported, not
	// counted as wins, losses or ties.
	Error            string `parquet:"error" json:"error,omitempty" bigquery:"error"`
	PromptTokens     int64  `parquet:"prompt_tokens" json:"prompt_tokens" bigquery:"prompt_tokens"`
	CompletionTokens int64  `parquet:"completion_tokens" json:"completion_tokens" bigquery:"completion_tokens"`
	JudgedAt         string `parquet:"judged_at" json:"judged_at" bigquery:"judged_at"` // RFC 3339
}

// Validate reports the first missing or malformed field.
func (r EvalResult) Validate() error {
	switch {
	case r.RunID == "" || r.CaseID == "" || r.PersonaID == "":
		return errors.New("eval result: run_id, case_id and persona_id are required")
	case r.Error != "":
		return nil
	case r.Winner != WinnerDPO && r.Winner != WinnerSFT && r.Winner != WinnerTie:
		return fmt.Errorf("eval result %s: winner must be dpo, sft or tie, got %q", r.CaseID, r.Winner)
	case r.Confidence != ConfidenceHigh && r.Confidence != ConfidenceMedium && r.Confidence != ConfidenceLow:
		return fmt.Errorf("eval result %s: confidence must be high, medium or low, got %q", r.CaseID, r.Confidence)
	}
	if err := r.SFTScores.Validate(); err != nil {
		return fmt.Errorf("eval result %s: sft %w", r.CaseID, err)
	}
	if err := r.DPOScores.Validate(); err != nil {
		return fmt.Errorf("eval result %s: dpo %w", r.CaseID, err)
	}
	return nil
}

// RowKey is the case id.
func (r EvalResult) RowKey() string { return r.CaseID }

// Partition is the persona id.
func (r EvalResult) Partition() string { return r.PersonaID }

package schemas

import (
	"errors"
	"fmt"
	"strings"
)

// Stage names, used in dead letters, the output layout and the manifest.
const (
	StagePrompts  = "prompts"
	StageGenerate = "generate"
	StageLabel    = "label"
	StageFormat   = "format"
)

// Variant labels: A is generated with strong persona constraints, B with weak ones.
const (
	VariantA = "A"
	VariantB = "B"
)

// Prompt is one recipe request for one persona: the input of the data-preparation job.
// Request is persona-neutral ("Create a recipe using ..."); the persona lives in the system
// prompt of variant A and, after training, in the persona's adapter.
type Prompt struct {
	PromptID  string   `parquet:"prompt_id" json:"prompt_id"`
	PersonaID string   `parquet:"persona_id" json:"persona_id"`
	Request   string   `parquet:"request" json:"request"`
	Pantry    []string `parquet:"pantry,list" json:"pantry"`
	// IncludesForbidden marks prompts whose pantry deliberately holds an ingredient the
	// persona must not eat: they teach the model to leave it out.
	IncludesForbidden bool `parquet:"includes_forbidden" json:"includes_forbidden"`
}

// Validate reports the first missing field.
func (p Prompt) Validate() error {
	switch {
	case p.PromptID == "":
		return errors.New("prompt: prompt_id is empty")
	case p.PersonaID == "":
		return fmt.Errorf("prompt %s: persona_id is empty", p.PromptID)
	case strings.TrimSpace(p.Request) == "":
		return fmt.Errorf("prompt %s: request is empty", p.PromptID)
	}
	return nil
}

// Variant is one generated recipe for a prompt (stage 1 output, data/variants/).
type Variant struct {
	PromptID    string  `parquet:"prompt_id" json:"prompt_id"`
	PersonaID   string  `parquet:"persona_id" json:"persona_id"`
	Variant     string  `parquet:"variant" json:"variant"` // "A" or "B"
	System      string  `parquet:"system" json:"system"`
	User        string  `parquet:"user" json:"user"`
	Temperature float64 `parquet:"temperature" json:"temperature"`
	Model       string  `parquet:"model" json:"model"`
	Text        string  `parquet:"text" json:"text"`
	// ParsedOK says whether Text holds a valid Recipe (ParseRecipe); ParseError says why not.
	ParsedOK         bool   `parquet:"parsed_ok" json:"parsed_ok"`
	ParseError       string `parquet:"parse_error" json:"parse_error,omitempty"`
	PromptTokens     int64  `parquet:"prompt_tokens" json:"prompt_tokens"`
	CompletionTokens int64  `parquet:"completion_tokens" json:"completion_tokens"`
	// LatencyMS is the latency of the original call; a cache hit keeps it, so re-runs
	// write identical rows.
	LatencyMS int64  `parquet:"latency_ms" json:"latency_ms"`
	CacheKey  string `parquet:"cache_key" json:"cache_key"`
}

// Key is the variant's unique id within a run.
func (v Variant) Key() string { return v.PromptID + "/" + v.Variant }

// Validate reports the first missing or malformed field.
func (v Variant) Validate() error {
	switch {
	case v.PromptID == "" || v.PersonaID == "":
		return errors.New("variant: prompt_id and persona_id are required")
	case v.Variant != VariantA && v.Variant != VariantB:
		return fmt.Errorf("variant %s: variant must be A or B, got %q", v.PromptID, v.Variant)
	case v.Temperature < 0 || v.Temperature > 2:
		return fmt.Errorf("variant %s: temperature %g outside [0, 2]", v.Key(), v.Temperature)
	}
	return nil
}

// CriterionScores are a judge's 0–10 scores for one recipe on the four labelling criteria
// of the spec (PIPELINE.md §3.2).
type CriterionScores struct {
	DietaryCompliance float64 `parquet:"dietary_compliance" json:"dietary_compliance"`
	ForbiddenAvoided  float64 `parquet:"forbidden_avoided" json:"forbidden_avoided"`
	CuisineAlignment  float64 `parquet:"cuisine_alignment" json:"cuisine_alignment"`
	PersonaMatch      float64 `parquet:"persona_match" json:"persona_match"`
}

// Total is the unweighted sum of the four criteria.
func (c CriterionScores) Total() float64 {
	return c.DietaryCompliance + c.ForbiddenAvoided + c.CuisineAlignment + c.PersonaMatch
}

// Validate checks every score lies in [0, 10].
func (c CriterionScores) Validate() error {
	for name, v := range map[string]float64{
		"dietary_compliance": c.DietaryCompliance, "forbidden_avoided": c.ForbiddenAvoided,
		"cuisine_alignment": c.CuisineAlignment, "persona_match": c.PersonaMatch,
	} {
		if v < 0 || v > 10 || v != v {
			return fmt.Errorf("score %s = %g outside [0, 10]", name, v)
		}
	}
	return nil
}

// Rules verdicts and LLM-vs-rules agreement values of a PreferencePair.
const (
	RulesPrefersA = "A"
	RulesPrefersB = "B"
	RulesTie      = "tie"

	AgreementAgree    = "agree"
	AgreementDisagree = "disagree"
	AgreementNA       = "n/a" // the rules judge had no preference, or was the labeller itself
)

// PreferencePair is one labelled pair (stage 2 output, data/preference_pairs/).
type PreferencePair struct {
	PairID        string `parquet:"pair_id" json:"pair_id"`
	PersonaID     string `parquet:"persona_id" json:"persona_id"`
	PromptID      string `parquet:"prompt_id" json:"prompt_id"`
	Prompt        string `parquet:"prompt" json:"prompt"` // the persona-neutral user request
	Chosen        string `parquet:"chosen" json:"chosen"`
	Rejected      string `parquet:"rejected" json:"rejected"`
	ChosenVariant string `parquet:"chosen_variant" json:"chosen_variant"` // "A" or "B"
	JudgeModel    string `parquet:"judge_model" json:"judge_model"`
	// JudgeWinner is the judge's own verdict before any rules veto ("A", "B").
	JudgeWinner    string          `parquet:"judge_winner" json:"judge_winner"`
	ChosenScores   CriterionScores `parquet:"chosen_scores" json:"chosen_scores"`
	RejectedScores CriterionScores `parquet:"rejected_scores" json:"rejected_scores"`
	Confidence     string          `parquet:"confidence" json:"confidence"` // high, medium, low
	Reasoning      string          `parquet:"reasoning" json:"reasoning"`
	// RulesVerdict is the dietary-rules judge's preference: "A", "B" or "tie".
	RulesVerdict       string   `parquet:"rules_verdict" json:"rules_verdict"`
	ChosenViolations   []string `parquet:"chosen_violations,list" json:"chosen_violations"`
	RejectedViolations []string `parquet:"rejected_violations,list" json:"rejected_violations"`
	Agreement          string   `parquet:"agreement" json:"agreement"` // agree, disagree, n/a
	// Vetoed is true when the rules veto flipped the judge's verdict.
	Vetoed bool `parquet:"vetoed" json:"vetoed"`
}

// Validate reports the first missing or malformed field.
func (p PreferencePair) Validate() error {
	switch {
	case p.PairID == "" || p.PersonaID == "":
		return errors.New("preference pair: pair_id and persona_id are required")
	case p.Chosen == "" || p.Rejected == "":
		return fmt.Errorf("preference pair %s: chosen and rejected must be non-empty", p.PairID)
	case p.ChosenVariant != VariantA && p.ChosenVariant != VariantB:
		return fmt.Errorf("preference pair %s: chosen_variant must be A or B, got %q", p.PairID, p.ChosenVariant)
	}
	if err := p.ChosenScores.Validate(); err != nil {
		return fmt.Errorf("preference pair %s: chosen %w", p.PairID, err)
	}
	if err := p.RejectedScores.Validate(); err != nil {
		return fmt.Errorf("preference pair %s: rejected %w", p.PairID, err)
	}
	return nil
}

// DPOExample is one training example (stage 3 output, data/dpo_formatted/), the format the
// trainer reads: Prompt is ChatML up to and including "<|im_start|>assistant\n"; Chosen and
// Rejected are the completions, each ending with ChatMLEnd.
type DPOExample struct {
	ID        string `parquet:"id" json:"id"`
	PersonaID string `parquet:"persona_id" json:"persona_id"`
	Prompt    string `parquet:"prompt" json:"prompt"`
	Chosen    string `parquet:"chosen" json:"chosen"`
	Rejected  string `parquet:"rejected" json:"rejected"`
	// Optional reference-policy log-probs (sums over completion tokens), filled by the
	// trainer's cache when present.
	RefChosenLogp   *float64 `parquet:"ref_chosen_logp,optional" json:"ref_chosen_logp,omitempty"`
	RefRejectedLogp *float64 `parquet:"ref_rejected_logp,optional" json:"ref_rejected_logp,omitempty"`
}

// ChatML markers shared by the formatter, the trainer and generation.
const (
	ChatMLStart     = "<|im_start|>"
	ChatMLEnd       = "<|im_end|>"
	ChatMLAssistant = ChatMLStart + "assistant\n"
)

// Validate checks the ChatML contract the trainer relies on.
func (e DPOExample) Validate() error {
	switch {
	case e.ID == "" || e.PersonaID == "":
		return errors.New("dpo example: id and persona_id are required")
	case !strings.HasPrefix(e.Prompt, ChatMLStart):
		return fmt.Errorf("dpo example %s: prompt must start with %q", e.ID, ChatMLStart)
	case !strings.HasSuffix(e.Prompt, ChatMLAssistant):
		return fmt.Errorf("dpo example %s: prompt must end with %q", e.ID, ChatMLAssistant)
	case !strings.HasSuffix(e.Chosen, ChatMLEnd) || !strings.HasSuffix(e.Rejected, ChatMLEnd):
		return fmt.Errorf("dpo example %s: chosen and rejected must end with %q", e.ID, ChatMLEnd)
	case e.Chosen == e.Rejected:
		return fmt.Errorf("dpo example %s: chosen and rejected are identical", e.ID)
	}
	return nil
}

// Dead-letter reasons. Every record a stage takes in ends as an output row or as a
// DeadLetter with one of these.
const (
	ReasonInvalidPrompt   = "invalid_prompt"    // a prompt row failed Validate
	ReasonUnknownPersona  = "unknown_persona"   // a prompt names a persona not in personas.yaml
	ReasonGenerateFailed  = "generate_failed"   // the generator call failed after retries
	ReasonMissingVariant  = "missing_variant"   // a prompt reached labelling without both variants
	ReasonUnparseable     = "unparseable"       // a variant's text is not a valid Recipe
	ReasonTie             = "tie"               // the judge (or rules judge) saw no winner
	ReasonBothViolate     = "both_violate"      // both recipes break a hard constraint
	ReasonJudgeFailed     = "judge_failed"      // the judge call failed after retries
	ReasonJudgeBadVerdict = "judge_bad_verdict" // the judge answered, but not a usable verdict
	ReasonVetoed          = "vetoed"            // the rules veto dropped the judge's verdict
	ReasonFormatFailed    = "format_failed"     // the pair could not be made a valid DPOExample
)

// DeadLetter is a record a stage could not turn into output, with the reason
// (data/dead_letters/<stage>/).
type DeadLetter struct {
	Stage     string `parquet:"stage" json:"stage"`
	PersonaID string `parquet:"persona_id" json:"persona_id"`
	RecordID  string `parquet:"record_id" json:"record_id"`
	Reason    string `parquet:"reason" json:"reason"`
	Detail    string `parquet:"detail" json:"detail"`
	Payload   string `parquet:"payload" json:"payload"` // the record as JSON
}

// Validate reports the first missing field.
func (d DeadLetter) Validate() error {
	if d.Stage == "" || d.RecordID == "" || d.Reason == "" {
		return fmt.Errorf("dead letter: stage, record_id and reason are required (got %q, %q, %q)", d.Stage, d.RecordID, d.Reason)
	}
	return nil
}

// RowKey and Partition give every row type its sort key within a shard and the directory it
// is written under (persona, or stage for dead letters), so sinks are generic.

// RowKey is the prompt id.
func (p Prompt) RowKey() string { return p.PromptID }

// Partition is the persona id.
func (p Prompt) Partition() string { return p.PersonaID }

// RowKey is prompt id / variant.
func (v Variant) RowKey() string { return v.Key() }

// Partition is the persona id.
func (v Variant) Partition() string { return v.PersonaID }

// RowKey is the pair id.
func (p PreferencePair) RowKey() string { return p.PairID }

// Partition is the persona id.
func (p PreferencePair) Partition() string { return p.PersonaID }

// RowKey is the example id.
func (e DPOExample) RowKey() string { return e.ID }

// Partition is the persona id.
func (e DPOExample) Partition() string { return e.PersonaID }

// RowKey is persona / record id / reason, unique within a stage.
func (d DeadLetter) RowKey() string { return d.PersonaID + "/" + d.RecordID + "/" + d.Reason }

// Partition is the stage.
func (d DeadLetter) Partition() string { return d.Stage }

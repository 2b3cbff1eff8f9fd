package report

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// scores gives criterion k the score base + k/4, so a criterion mixed up with another shows
// in the means.
func scores(base float64) schemas.EvalScores {
	return schemas.EvalScores{PersonaAlignment: base, ConstraintCompliance: base + 0.25, PreferredIngredients: base + 0.5,
		RecipeQuality: base + 0.75, OverallSuitability: base + 1}
}

// judgedRow is a judged case of run r1 with 100 prompt and 20 completion tokens.
func judgedRow(id, persona, category, winner, confidence string, agree bool, sftBase, dpoBase float64,
	sftViol, dpoViol []string, sftParsed, dpoParsed bool) schemas.EvalResult {
	return schemas.EvalResult{
		RunID: "r1", RunDate: "2025-01-02", CaseID: id, PersonaID: persona, Category: category,
		Request: "Create a recipe using tofu.", SFTOutput: "sft recipe " + id, DPOOutput: "dpo recipe " + id,
		SFTScores: scores(sftBase), DPOScores: scores(dpoBase), Winner: winner, Confidence: confidence,
		OrderAgreement: agree, Reasoning: "because " + id, JudgeModel: "gemini-2.0-flash",
		SFTViolations: sftViol, DPOViolations: dpoViol, SFTParsedOK: sftParsed, DPOParsedOK: dpoParsed,
		PromptTokens: 100, CompletionTokens: 20, JudgedAt: "2025-01-02T03:04:05Z",
	}
}

func errorRow(id, persona, category string, promptTokens int64) schemas.EvalResult {
	return schemas.EvalResult{RunID: "r1", CaseID: id, PersonaID: persona, Category: category,
		SFTOutput: "sft " + id, DPOOutput: "dpo " + id, JudgeModel: "gemini-2.0-flash",
		Error: "judge: 500 Internal Server Error after 4 attempts", PromptTokens: promptTokens}
}

// fixture is seven hand-made rows: two personas, three categories, a tie from order
// disagreement, an unparsed DPO output, and two error rows (one alone in its category).
func fixture() []schemas.EvalResult {
	v := func(s ...string) []string { return s }
	return []schemas.EvalResult{
		judgedRow("c1", "p1", schemas.CategoryBasicAlignment, "dpo", "high", true, 5, 8, nil, nil, true, true),
		judgedRow("c2", "p1", schemas.CategoryConstraintStress, "dpo", "medium", true, 4, 9, v("pork"), nil, true, true),
		judgedRow("c3", "p1", schemas.CategoryConstraintStress, "tie", "low", false, 6, 6, v("x"), v("y", "z"), true, true),
		judgedRow("c4", "p2", schemas.CategoryBasicAlignment, "sft", "high", true, 7, 3, nil, v("beef"), true, true),
		judgedRow("c5", "p2", schemas.CategoryBasicAlignment, "dpo", "high", true, 2, 6, v("a"), nil, true, false),
		errorRow("c6", "p2", schemas.CategoryConstraintStress, 50),
		errorRow("c7", "p2", schemas.CategoryEdgeCase, 0),
	}
}

func fp(v float64) *float64 { return &v }

func sp(base float64) *schemas.EvalScores { s := scores(base); return &s }

func TestSummarize(t *testing.T) {
	now = func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)) }
	t.Cleanup(func() { now = time.Now })
	s := Summarize(fixture(), "gemini-2.0-flash")

	if s.RunID != "r1" || s.JudgeModel != "gemini-2.0-flash" || s.GeneratedAt != "2025-01-02T02:04:05Z" || s.SchemaVersion != SchemaVersion {
		t.Errorf("header: got %q %q %q %d, want r1 gemini-2.0-flash 2025-01-02T02:04:05Z %d", s.RunID, s.JudgeModel, s.GeneratedAt, s.SchemaVersion, SchemaVersion)
	}
	tests := []struct {
		name string
		got  Block
		want Block
	}{
		{"overall", s.Overall, Block{
			N: 5, Errors: 2, Wins: 3, Losses: 1, Ties: 1,
			WinRate: fp(0.6), LossRate: fp(0.2), TieRate: fp(0.2),
			Confidence:            ConfidenceDist{All: ConfidenceCounts{High: 3, Medium: 1, Low: 1}, Wins: ConfidenceCounts{High: 2, Medium: 1}},
			HighConfidenceWinRate: fp(0.4), OrderAgreementRate: fp(0.8),
			Parsed: ModelCounts{SFT: 5, DPO: 4}, ParseRate: ModelRates{SFT: fp(1), DPO: fp(0.8)},
			Violating: ModelCounts{SFT: 3, DPO: 2}, ViolationRate: ModelRates{SFT: fp(0.6), DPO: fp(0.5)},
			ViolationReduction: fp(1.0 / 6),
			MeanScores:         MeanScores{SFT: sp(4.8), DPO: sp(6.4)},
			// Decisive: c2 (rules dpo, verdict dpo), c3 (rules sft, verdict tie), c4 (sft, sft).
			// c1 has equal counts, c5 an unparsed output.
			LLMVsRulesAgreement: fp(2.0 / 3), LLMVsRulesCases: 3,
			Tokens:           Tokens{Prompt: 550, Completion: 100},
			EstimatedCostUSD: fp((550*0.10 + 100*0.40) / 1e6),
		}},
		{"persona p1", s.PerPersona["p1"], Block{
			N: 3, Wins: 2, Ties: 1,
			WinRate: fp(2.0 / 3), LossRate: fp(0), TieRate: fp(1.0 / 3),
			Confidence:            ConfidenceDist{All: ConfidenceCounts{High: 1, Medium: 1, Low: 1}, Wins: ConfidenceCounts{High: 1, Medium: 1}},
			HighConfidenceWinRate: fp(1.0 / 3), OrderAgreementRate: fp(2.0 / 3),
			Parsed: ModelCounts{SFT: 3, DPO: 3}, ParseRate: ModelRates{SFT: fp(1), DPO: fp(1)},
			Violating: ModelCounts{SFT: 2, DPO: 1}, ViolationRate: ModelRates{SFT: fp(2.0 / 3), DPO: fp(1.0 / 3)},
			ViolationReduction:  fp(0.5),
			MeanScores:          MeanScores{SFT: sp(5), DPO: sp(23.0 / 3)},
			LLMVsRulesAgreement: fp(0.5), LLMVsRulesCases: 2,
			Tokens:           Tokens{Prompt: 300, Completion: 60},
			EstimatedCostUSD: fp((300*0.10 + 60*0.40) / 1e6),
		}},
		{"persona p2", s.PerPersona["p2"], Block{
			N: 2, Errors: 2, Wins: 1, Losses: 1,
			WinRate: fp(0.5), LossRate: fp(0.5), TieRate: fp(0),
			Confidence:            ConfidenceDist{All: ConfidenceCounts{High: 2}, Wins: ConfidenceCounts{High: 1}},
			HighConfidenceWinRate: fp(0.5), OrderAgreementRate: fp(1),
			Parsed: ModelCounts{SFT: 2, DPO: 1}, ParseRate: ModelRates{SFT: fp(1), DPO: fp(0.5)},
			Violating: ModelCounts{SFT: 1, DPO: 1}, ViolationRate: ModelRates{SFT: fp(0.5), DPO: fp(1)},
			ViolationReduction:  fp(-1), // DPO violates twice as often
			MeanScores:          MeanScores{SFT: sp(4.5), DPO: sp(4.5)},
			LLMVsRulesAgreement: fp(1), LLMVsRulesCases: 1,
			Tokens:           Tokens{Prompt: 250, Completion: 40},
			EstimatedCostUSD: fp((250*0.10 + 40*0.40) / 1e6),
		}},
		{"category basic_alignment", s.PerCategory[schemas.CategoryBasicAlignment], Block{
			N: 3, Wins: 2, Losses: 1,
			WinRate: fp(2.0 / 3), LossRate: fp(1.0 / 3), TieRate: fp(0),
			Confidence:            ConfidenceDist{All: ConfidenceCounts{High: 3}, Wins: ConfidenceCounts{High: 2}},
			HighConfidenceWinRate: fp(2.0 / 3), OrderAgreementRate: fp(1),
			Parsed: ModelCounts{SFT: 3, DPO: 2}, ParseRate: ModelRates{SFT: fp(1), DPO: fp(2.0 / 3)},
			Violating: ModelCounts{SFT: 1, DPO: 1}, ViolationRate: ModelRates{SFT: fp(1.0 / 3), DPO: fp(0.5)},
			ViolationReduction:  fp(-0.5),
			MeanScores:          MeanScores{SFT: sp(14.0 / 3), DPO: sp(17.0 / 3)},
			LLMVsRulesAgreement: fp(1), LLMVsRulesCases: 1,
			Tokens:           Tokens{Prompt: 300, Completion: 60},
			EstimatedCostUSD: fp((300*0.10 + 60*0.40) / 1e6),
		}},
		{"category constraint_stress", s.PerCategory[schemas.CategoryConstraintStress], Block{
			N: 2, Errors: 1, Wins: 1, Ties: 1,
			WinRate: fp(0.5), LossRate: fp(0), TieRate: fp(0.5),
			Confidence:            ConfidenceDist{All: ConfidenceCounts{Medium: 1, Low: 1}, Wins: ConfidenceCounts{Medium: 1}},
			HighConfidenceWinRate: fp(0), OrderAgreementRate: fp(0.5),
			Parsed: ModelCounts{SFT: 2, DPO: 2}, ParseRate: ModelRates{SFT: fp(1), DPO: fp(1)},
			Violating: ModelCounts{SFT: 2, DPO: 1}, ViolationRate: ModelRates{SFT: fp(1), DPO: fp(0.5)},
			ViolationReduction:  fp(0.5),
			MeanScores:          MeanScores{SFT: sp(5), DPO: sp(7.5)},
			LLMVsRulesAgreement: fp(0.5), LLMVsRulesCases: 2,
			Tokens:           Tokens{Prompt: 250, Completion: 40},
			EstimatedCostUSD: fp((250*0.10 + 40*0.40) / 1e6),
		}},
		{"category edge_case (errors only)", s.PerCategory[schemas.CategoryEdgeCase], Block{
			Errors: 1, EstimatedCostUSD: fp(0),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assertBlock(t, tt.got, tt.want) })
	}
	if got := len(s.PerPersona); got != 2 {
		t.Errorf("per_persona: got %d groups, want 2", got)
	}
	if got := len(s.PerCategory); got != 3 {
		t.Errorf("per_category: got %d groups, want 3", got)
	}
}

// assertBlock compares blocks field by field, floats to 1e-12, naming the JSON path of a
// difference.
func assertBlock(t *testing.T, got, want Block) {
	t.Helper()
	g, w := flatten(t, got), flatten(t, want)
	for k, wv := range w {
		gv, ok := g[k]
		if !ok {
			t.Errorf("%s: missing, want %v", k, wv)
			continue
		}
		gf, gok := gv.(float64)
		wf, wok := wv.(float64)
		if gok && wok {
			if math.Abs(gf-wf) > 1e-12 {
				t.Errorf("%s: got %v, want %v", k, gf, wf)
			}
		} else if !reflect.DeepEqual(gv, wv) {
			t.Errorf("%s: got %v, want %v", k, gv, wv)
		}
	}
}

// flatten maps each JSON leaf of b to its dotted path.
func flatten(t *testing.T, b Block) map[string]any {
	t.Helper()
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k, c := range m {
				walk(strings.TrimPrefix(prefix+"."+k, "."), c)
			}
			return
		}
		out[prefix] = v
	}
	walk("", v)
	return out
}

func TestSummarizeRulesJudge(t *testing.T) {
	rows := fixture()
	for i := range rows {
		rows[i].JudgeModel = RulesJudge
	}
	s := Summarize(rows, "") // the judge comes from the rows
	if s.JudgeModel != RulesJudge {
		t.Errorf("judge_model: got %q, want %q", s.JudgeModel, RulesJudge)
	}
	o := s.Overall
	if o.LLMVsRulesAgreement != nil || o.LLMVsRulesCases != 0 {
		t.Errorf("llm_vs_rules: got %v over %d cases, want null over 0 for the rules judge", deref(o.LLMVsRulesAgreement), o.LLMVsRulesCases)
	}
	if o.EstimatedCostUSD == nil || *o.EstimatedCostUSD != 0 {
		t.Errorf("estimated_cost_usd: got %v, want 0 for the rules judge", deref(o.EstimatedCostUSD))
	}
	if unpriced := Summarize(rows, "my-self-hosted-judge"); unpriced.Overall.EstimatedCostUSD != nil {
		t.Errorf("estimated_cost_usd for an unpriced judge: got %v, want null", *unpriced.Overall.EstimatedCostUSD)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestSummarizeEdgeRows(t *testing.T) {
	rows := []schemas.EvalResult{
		{RunID: "r1", CaseID: "a", Winner: "maybe", Confidence: "high"},               // unknown winner: an error
		{RunID: "r2", CaseID: "b", PersonaID: "p", Winner: "dpo", Confidence: "sure"}, // unknown confidence: in no bucket
	}
	s := Summarize(rows, "gemini-2.0-flash")
	if s.RunID != "r1,r2" {
		t.Errorf("run_id: got %q, want r1,r2", s.RunID)
	}
	o := s.Overall
	if o.N != 1 || o.Errors != 1 || o.Wins != 1 {
		t.Errorf("counts: got n=%d errors=%d wins=%d, want 1 1 1", o.N, o.Errors, o.Wins)
	}
	if o.Confidence != (ConfidenceDist{}) {
		t.Errorf("confidence: got %+v, want all zero", o.Confidence)
	}
	if o.ViolationRate.SFT != nil || o.ParseRate.SFT == nil || *o.ParseRate.SFT != 0 {
		t.Errorf("nothing parsed: got violation_rate.sft %v parse_rate.sft %v, want null and 0", deref(o.ViolationRate.SFT), deref(o.ParseRate.SFT))
	}
	if _, ok := s.PerPersona[UnknownGroup]; !ok {
		t.Errorf("per_persona: got keys %v, want %q for the row without a persona", keys(s.PerPersona), UnknownGroup)
	}
	if _, ok := s.PerCategory[UnknownGroup]; !ok {
		t.Errorf("per_category: got keys %v, want %q", keys(s.PerCategory), UnknownGroup)
	}

	empty := Summarize(nil, "gemini-2.0-flash")
	if empty.Overall.WinRate != nil || empty.Overall.MeanScores.SFT != nil || len(empty.PerPersona) != 0 {
		t.Errorf("no rows: got %+v, want null rates and no groups", empty.Overall)
	}
}

func keys(m map[string]Block) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestReduction(t *testing.T) {
	tests := []struct {
		name     string
		sft, dpo *float64
		want     *float64
	}{
		{"halved", fp(0.4), fp(0.2), fp(0.5)},
		{"all removed", fp(0.3), fp(0), fp(1)},
		{"unchanged", fp(0.25), fp(0.25), fp(0)},
		{"worse", fp(0.2), fp(0.5), fp(-1.5)},
		{"sft zero", fp(0), fp(0.1), nil},
		{"both zero", fp(0), fp(0), nil},
		{"sft undefined", nil, fp(0.1), nil},
		{"dpo undefined", fp(0.1), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Reduction(tt.sft, tt.dpo)
			if (got == nil) != (tt.want == nil) || got != nil && math.Abs(*got-*tt.want) > 1e-12 {
				t.Errorf("Reduction(%v, %v): got %v, want %v", deref(tt.sft), deref(tt.dpo), deref(got), deref(tt.want))
			}
		})
	}
}

// TestSummaryJSON pins the field names the issue and the README promise, and null for an
// undefined rate.
func TestSummaryJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSummaryJSON(&buf, Summarize(fixture(), "gemini-2.0-flash")); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("summary is not JSON: %v", err)
	}
	get := func(path ...string) any {
		var v any = doc
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return "<missing>"
			}
			if v, ok = m[p]; !ok {
				return "<missing>"
			}
		}
		return v
	}
	tests := []struct {
		path []string
		want any
	}{
		{[]string{"overall", "win_rate"}, 0.6},
		{[]string{"overall", "n"}, 5.0},
		{[]string{"overall", "errors"}, 2.0},
		{[]string{"overall", "violation_rate", "sft"}, 0.6},
		{[]string{"overall", "violation_rate", "dpo"}, 0.5},
		{[]string{"overall", "confidence", "wins", "high"}, 2.0},
		{[]string{"overall", "tokens", "prompt"}, 550.0},
		{[]string{"overall", "mean_scores", "dpo", "overall_suitability"}, 7.4},
		{[]string{"per_persona", "p1", "win_rate"}, 2.0 / 3},
		{[]string{"per_category", "edge_case", "win_rate"}, nil},
		{[]string{"per_category", "edge_case", "mean_scores", "sft"}, nil},
		{[]string{"per_category", "edge_case", "violation_reduction"}, nil},
		{[]string{"judge_model"}, "gemini-2.0-flash"},
		{[]string{"run_id"}, "r1"},
	}
	for _, tt := range tests {
		got := get(tt.path...)
		if g, ok := got.(float64); ok {
			if w, ok := tt.want.(float64); ok && math.Abs(g-w) < 1e-9 {
				continue
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", strings.Join(tt.path, "."), got, tt.want)
		}
	}
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reports")
	rows := fixture()
	s := Summarize(rows, "gemini-2.0-flash")
	if err := WriteDir(dir, s, rows); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{DetailedFile, HTMLFile, SummaryFile}; !reflect.DeepEqual(names, want) {
		t.Errorf("files: got %v, want %v (no temporary files left)", names, want)
	}

	data, err := os.ReadFile(filepath.Join(dir, DetailedFile))
	if err != nil {
		t.Fatal(err)
	}
	var d Detailed
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.Cases != 7 || d.Errors != 2 || len(d.Results) != 7 || d.RunID != "r1" {
		t.Fatalf("detailed: got cases=%d errors=%d results=%d run=%q, want 7 2 7 r1", d.Cases, d.Errors, len(d.Results), d.RunID)
	}
	var order []string
	for _, r := range d.Results {
		order = append(order, r.CaseID)
	}
	if want := []string{"c1", "c2", "c3", "c4", "c5", "c6", "c7"}; !reflect.DeepEqual(order, want) {
		t.Errorf("detailed order: got %v, want %v", order, want)
	}
	if c6 := d.Results[5]; c6.Error == "" || c6.DPOOutput != "dpo c6" {
		t.Errorf("error row: got %+v, want the error and both outputs kept", c6)
	}
	if c2 := d.Results[1]; !reflect.DeepEqual(c2.SFTViolations, []string{"pork"}) || c2.DPOScores != scores(9) {
		t.Errorf("c2: got violations %v scores %+v, want [pork] and %+v", c2.SFTViolations, c2.DPOScores, scores(9))
	}
	if !bytes.Contains(data, []byte(`"dpo_violations": []`)) || bytes.Contains(data, []byte(`"dpo_violations": null`)) {
		t.Errorf("detailed: want empty violation lists as [], not null")
	}
}

func TestWriteFileKeepsOldOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), SummaryFile)
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(path, func(w io.Writer) error {
		w.Write([]byte("half"))
		return os.ErrClosed
	})
	if err == nil {
		t.Fatal("WriteFile: got nil error, want the write func's")
	}
	got, _ := os.ReadFile(path)
	entries, _ := os.ReadDir(filepath.Dir(path))
	if string(got) != "old" || len(entries) != 1 {
		t.Errorf("after a failed write: got %q and %d files, want \"old\" and 1", got, len(entries))
	}
}

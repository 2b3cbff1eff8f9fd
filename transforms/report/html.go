package report

import (
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// reportTemplate is the whole page: CSS and the filter script are inline so the file works
// offline and from a bucket, with no fonts, scripts or images fetched.
//
//go:embed report.html.tmpl
var reportTemplate string

var pageTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":   pct,
	"score": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f":     func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"usd":   usd,
	"means": func(s *schemas.EvalScores) string {
		if s == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.1f", mean5(*s))
	},
	"criteria": func() []string {
		names := make([]string, len(criteria))
		for i, c := range criteria {
			names[i] = c.Name
		}
		return names
	},
}).Parse(reportTemplate))

// Outcomes of a case row, as the table's outcome filter names them.
const (
	OutcomeDPO   = schemas.WinnerDPO
	OutcomeSFT   = schemas.WinnerSFT
	OutcomeTie   = schemas.WinnerTie
	OutcomeError = "error"
)

// page is the template's data.
type page struct {
	S                     Summary
	O                     Block
	Personas, Categories  []namedBlock
	WinPersona, WinCat    chart
	Scores, Violations    chart
	Cases                 []caseView
	PersonaIDs, CatIDs    []string
	Outcomes              [][2]string // value, label
	RulesJudge, HasErrors bool
}

// caseView is one row of the cases table.
type caseView struct {
	schemas.EvalResult
	Outcome, OutcomeLabel string
	SFTMean, DPOMean      float64
	Scores                []scorePair // per criterion
}

type scorePair struct {
	Name     string
	SFT, DPO float64
}

// RenderHTML writes reports/evaluation_report.html: headline numbers, SVG charts (win rate per
// persona and per category, score distributions per criterion, violation rates per persona),
// per-persona and per-category tables, and every case of results in a table filterable by
// persona, category and outcome. Filters are kept in the URL fragment
// (#persona=…&category=…&outcome=dpo|sft|tie|error), so a filtered view can be linked.
// Model outputs, reasoning and ids are untrusted text and are escaped by html/template.
func RenderHTML(w io.Writer, s Summary, results []schemas.EvalResult) error {
	p := page{S: s, O: s.Overall, RulesJudge: s.JudgeModel == RulesJudge, HasErrors: s.Overall.Errors > 0}
	p.Personas = named(s.PerPersona, strings.Compare)
	p.Categories = named(s.PerCategory, categoryOrder)
	p.WinPersona = outcomeChart("chart-win-persona", "Outcome per persona (DPO vs SFT)", p.Personas)
	p.WinCat = outcomeChart("chart-win-category", "Outcome per test category", p.Categories)
	p.Scores = scoreChart("chart-scores", "Judge scores per criterion (0–10), judged cases", results)
	p.Violations = violationChart("chart-violations", "Parsed outputs with ≥1 rules violation",
		append([]namedBlock{{Name: "overall", B: s.Overall}}, p.Personas...))
	for _, nb := range p.Personas {
		p.PersonaIDs = append(p.PersonaIDs, nb.Name)
	}
	for _, nb := range p.Categories {
		p.CatIDs = append(p.CatIDs, nb.Name)
	}
	p.Outcomes = [][2]string{{OutcomeDPO, "DPO win"}, {OutcomeSFT, "SFT win"}, {OutcomeTie, "tie"}, {OutcomeError, "error"}}
	for _, r := range sortedRows(results) {
		p.Cases = append(p.Cases, newCaseView(r))
	}
	if err := pageTmpl.Execute(w, p); err != nil {
		return fmt.Errorf("report: render html: %w", err)
	}
	return nil
}

func newCaseView(r schemas.EvalResult) caseView {
	// The table groups rows exactly as Summarize does, so filter counts match the summary.
	r.PersonaID, r.Category = orUnknown(r.PersonaID), orUnknown(r.Category)
	v := caseView{EvalResult: r, SFTMean: mean5(r.SFTScores), DPOMean: mean5(r.DPOScores)}
	switch {
	case !judged(r):
		v.Outcome, v.OutcomeLabel = OutcomeError, "error"
	case r.Winner == schemas.WinnerDPO:
		v.Outcome, v.OutcomeLabel = OutcomeDPO, "DPO"
	case r.Winner == schemas.WinnerSFT:
		v.Outcome, v.OutcomeLabel = OutcomeSFT, "SFT"
	default:
		v.Outcome, v.OutcomeLabel = OutcomeTie, "tie"
	}
	for _, c := range criteria {
		v.Scores = append(v.Scores, scorePair{Name: c.Name, SFT: c.Score(r.SFTScores), DPO: c.Score(r.DPOScores)})
	}
	return v
}

func mean5(s schemas.EvalScores) float64 {
	return (s.PersonaAlignment + s.ConstraintCompliance + s.PreferredIngredients + s.RecipeQuality + s.OverallSuitability) / 5
}

func named(m map[string]Block, order func(a, b string) int) []namedBlock {
	keys := slices.SortedFunc(maps.Keys(m), order)
	out := make([]namedBlock, len(keys))
	for i, k := range keys {
		out[i] = namedBlock{Name: k, B: m[k]}
	}
	return out
}

// categoryOrder sorts the four categories as PIPELINE.md §5.2 lists them, others after, by name.
func categoryOrder(a, b string) int {
	rank := func(c string) int {
		if i := slices.Index([]string{schemas.CategoryBasicAlignment, schemas.CategoryConstraintStress,
			schemas.CategoryEdgeCase, schemas.CategoryCrossPersona}, c); i >= 0 {
			return i
		}
		return 4
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b))
}

// pct formats a rate as a percentage with one decimal, "n/a" when undefined.
func pct(r *float64) string {
	if r == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100**r)
}

func usd(v *float64) string {
	if v == nil {
		return "unknown price"
	}
	return fmt.Sprintf("$%.4f", *v)
}

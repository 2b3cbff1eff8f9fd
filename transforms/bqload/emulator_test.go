package bqload_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"google.golang.org/api/iterator"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/blob/gcstest"
	"github.com/pantrypilot/recipe-dpo/transforms/bqload"
	"github.com/pantrypilot/recipe-dpo/transforms/bqload/bqtest"
	"github.com/pantrypilot/recipe-dpo/transforms/report"
)

const (
	project = "test-project"
	bucket  = "eval-staging"
)

func scores(base float64) schemas.EvalScores {
	return schemas.EvalScores{PersonaAlignment: base, ConstraintCompliance: base + 0.25,
		PreferredIngredients: base + 0.5, RecipeQuality: base + 0.75, OverallSuitability: base + 1}
}

// caseRow is a judged case; winner "" makes it an error row.
func caseRow(run, date, id, persona, category, winner string, sftViol, dpoViol []string, sftParsed, dpoParsed bool, sftBase, dpoBase float64) schemas.EvalResult {
	r := schemas.EvalResult{RunID: run, RunDate: date, CaseID: id, PersonaID: persona, Category: category,
		Request: "Create a recipe with " + id, SFTOutput: `{"title":"sft ` + id + `"}`, DPOOutput: `{"title":"dpo ` + id + `"}`,
		SFTScores: scores(sftBase), DPOScores: scores(dpoBase), Winner: winner, Confidence: schemas.ConfidenceHigh,
		OrderAgreement: winner != schemas.WinnerTie, Reasoning: "because", JudgeModel: "gemini-2.0-flash",
		SFTViolations: sftViol, DPOViolations: dpoViol, SFTParsedOK: sftParsed, DPOParsedOK: dpoParsed,
		PromptTokens: 100, CompletionTokens: 20, JudgedAt: date + "T10:00:00Z"}
	if winner == "" {
		r.Winner, r.Confidence, r.Error = "", "", "judge: 500 after 4 attempts"
		r.SFTScores, r.DPOScores = schemas.EvalScores{}, schemas.EvalScores{}
	}
	return r
}

// runRows are two personas × three categories of one run: wins, losses, ties, error rows (one
// alone in its group), unparsed outputs and violations on both sides.
func runRows(run, date string) []schemas.EvalResult {
	v := func(s ...string) []string { return s }
	const basic, stress, edge = schemas.CategoryBasicAlignment, schemas.CategoryConstraintStress, schemas.CategoryEdgeCase
	return []schemas.EvalResult{
		caseRow(run, date, "vegan-01", "vegan", basic, "dpo", nil, nil, true, true, 5, 8),
		caseRow(run, date, "vegan-02", "vegan", basic, "dpo", v("honey"), nil, true, true, 4, 7),
		caseRow(run, date, "vegan-03", "vegan", basic, "sft", nil, v("butter"), true, true, 7, 3),
		caseRow(run, date, "vegan-04", "vegan", basic, "tie", v("egg"), v("egg", "milk"), true, true, 6, 6),
		caseRow(run, date, "vegan-05", "vegan", stress, "dpo", v("cheese"), nil, true, false, 2, 9),
		caseRow(run, date, "vegan-06", "vegan", stress, "", nil, nil, false, false, 0, 0),
		caseRow(run, date, "keto-01", "keto", basic, "sft", nil, v("rice"), true, true, 8, 4),
		caseRow(run, date, "keto-02", "keto", basic, "dpo", v("bread"), nil, true, true, 3, 8),
		caseRow(run, date, "keto-03", "keto", basic, "tie", nil, nil, false, true, 5, 5),
		caseRow(run, date, "keto-04", "keto", edge, "", nil, nil, true, true, 0, 0),
	}
}

// secondRun is a later run where DPO does better.
func secondRun() []schemas.EvalResult {
	rows := runRows("run-2", "2026-11-08")
	for i := range rows {
		if rows[i].Winner == schemas.WinnerSFT || rows[i].Winner == schemas.WinnerTie {
			rows[i].Winner = schemas.WinnerDPO
		}
		rows[i].DPOViolations = nil
	}
	return rows
}

func start(t *testing.T) (*bigquery.Client, bqload.Options) {
	t.Helper()
	gcstest.Start(t, bucket)
	emu := bqtest.Start(t, project)
	return emu.Client, bqload.Options{Dataset: "recipe_dpo", Table: "eval_results", Staging: "gs://" + bucket + "/runs"}
}

func count(t *testing.T, c *bigquery.Client, o bqload.Options, where string) int64 {
	t.Helper()
	q := c.Query(fmt.Sprintf("SELECT COUNT(*) AS n FROM `%s.%s.%s` %s", project, o.Dataset, o.Table, where))
	it, err := q.Read(context.Background())
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	var r struct{ N int64 }
	if err := it.Next(&r); err != nil {
		t.Fatalf("count: %v", err)
	}
	return r.N
}

func TestLoadIdempotent(t *testing.T) {
	ctx := context.Background()
	c, o := start(t)
	rows := runRows("run-1", "2026-11-01")

	first, err := bqload.Load(ctx, c, o, rows)
	if err != nil {
		t.Fatalf("first load: %v", err)
	}
	if first.Reused || first.Replaced || first.Rows != len(rows) {
		t.Errorf("first load: got %+v, want a new job of %d rows", first, len(rows))
	}
	if want := "gs://" + bucket + "/runs/bq/run-1/part-00000.json"; first.URI != want {
		t.Errorf("staged at %s, want %s", first.URI, want)
	}
	if _, err := blob.ReadFile(ctx, first.URI); err != nil {
		t.Errorf("staged file: %v", err)
	}
	if got := count(t, c, o, ""); got != int64(len(rows)) {
		t.Fatalf("after first load: %d rows, want %d", got, len(rows))
	}

	t.Run("table layout", func(t *testing.T) {
		md, err := c.Dataset(o.Dataset).Table(o.Table).Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tp := md.TimePartitioning; tp == nil || tp.Field != "run_date" {
			t.Errorf("time partitioning: got %+v, want on run_date", tp)
		}
		if cl := md.Clustering; cl == nil || !slices.Equal(cl.Fields, []string{"persona_id"}) {
			t.Errorf("clustering: got %+v, want [persona_id]", cl)
		}
		for _, f := range md.Schema {
			if f.Name == "run_date" && f.Type != bigquery.DateFieldType {
				t.Errorf("run_date: got %s, want DATE", f.Type)
			}
		}
	})

	t.Run("values round-trip", func(t *testing.T) {
		q := c.Query(fmt.Sprintf("SELECT run_date, sft_scores, dpo_violations, error FROM `%s.%s.%s` WHERE case_id = 'vegan-04'", project, o.Dataset, o.Table))
		it, err := q.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			RunDate       civil.Date          `bigquery:"run_date"`
			SFTScores     schemas.EvalScores  `bigquery:"sft_scores"`
			DPOViolations []string            `bigquery:"dpo_violations"`
			Error         bigquery.NullString `bigquery:"error"`
		}
		if err := it.Next(&got); err != nil {
			t.Fatal(err)
		}
		if got.RunDate != (civil.Date{Year: 2026, Month: 11, Day: 1}) || got.SFTScores != scores(6) ||
			!slices.Equal(got.DPOViolations, []string{"egg", "milk"}) || got.Error.StringVal != "" {
			t.Errorf("got %+v, want 2026-11-01, scores(6), [egg milk], no error", got)
		}
	})

	t.Run("re-run with the same rows reuses the job", func(t *testing.T) {
		shuffled := slices.Clone(rows)
		slices.Reverse(shuffled)
		again, err := bqload.Load(ctx, c, o, shuffled)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Reused || again.JobID != first.JobID {
			t.Errorf("got %+v, want job %s reused", again, first.JobID)
		}
		if got := count(t, c, o, ""); got != int64(len(rows)) {
			t.Errorf("after re-run: %d rows, want %d", got, len(rows))
		}
	})

	changed := slices.Clone(rows)
	changed[0].Winner = schemas.WinnerSFT
	t.Run("changed rows are refused", func(t *testing.T) {
		_, err := bqload.Load(ctx, c, o, changed)
		if !errors.Is(err, bqload.ErrRunLoaded) {
			t.Errorf("got %v, want ErrRunLoaded", err)
		}
		if got := count(t, c, o, ""); got != int64(len(rows)) {
			t.Errorf("after refused load: %d rows, want %d", got, len(rows))
		}
	})

	t.Run("changed rows replace the run", func(t *testing.T) {
		o := o
		o.Replace = true
		res, err := bqload.Load(ctx, c, o, changed)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Replaced || res.Reused || res.JobID == first.JobID {
			t.Errorf("got %+v, want a new job replacing the run", res)
		}
		if got := count(t, c, o, ""); got != int64(len(rows)) {
			t.Errorf("after replace: %d rows, want %d", got, len(rows))
		}
		if got := count(t, c, o, "WHERE case_id = 'vegan-01' AND winner = 'sft'"); got != 1 {
			t.Errorf("replaced row: %d rows with the new winner, want 1", got)
		}
		// Loading the replacement again is a no-op, even with Replace.
		again, err := bqload.Load(ctx, c, o, changed)
		if err != nil || !again.Reused || again.JobID != res.JobID {
			t.Errorf("re-run of the replacement: got %+v, %v; want job %s reused", again, err, res.JobID)
		}
	})

	t.Run("the first rows no longer count as loaded", func(t *testing.T) {
		// Their job succeeded, but the replacement superseded it.
		if _, err := bqload.Load(ctx, c, o, rows); !errors.Is(err, bqload.ErrRunLoaded) {
			t.Errorf("got %v, want ErrRunLoaded", err)
		}
		o := o
		o.Replace = true
		back, err := bqload.Load(ctx, c, o, rows)
		if err != nil {
			t.Fatal(err)
		}
		if want := first.JobID + "_2"; !back.Replaced || back.JobID != want {
			t.Errorf("got %+v, want job %s replacing the run", back, want)
		}
		if got := count(t, c, o, ""); got != int64(len(rows)) {
			t.Errorf("after replacing back: %d rows, want %d", got, len(rows))
		}
		if got := count(t, c, o, "WHERE case_id = 'vegan-01' AND winner = 'dpo'"); got != 1 {
			t.Errorf("row restored: %d rows with the first winner, want 1", got)
		}
	})
}

// TestQueries checks the README's queries against report.Summarize on the same rows.
func TestQueries(t *testing.T) {
	ctx := context.Background()
	c, o := start(t)
	run1, run2 := runRows("run-1", "2026-11-01"), secondRun()
	for _, rows := range [][]schemas.EvalResult{run1, run2} {
		if _, err := bqload.Load(ctx, c, o, rows); err != nil {
			t.Fatal(err)
		}
	}
	table := c.Dataset(o.Dataset).Table(o.Table)

	t.Run("win rate by persona and category", func(t *testing.T) {
		type result struct {
			PersonaID string               `bigquery:"persona_id"`
			Category  string               `bigquery:"category"`
			N         int64                `bigquery:"n"`
			Wins      int64                `bigquery:"wins"`
			Losses    int64                `bigquery:"losses"`
			Ties      int64                `bigquery:"ties"`
			Errors    int64                `bigquery:"errors"`
			WinRate   bigquery.NullFloat64 `bigquery:"win_rate"`
		}
		got := query[result](t, c, bqload.Render(bqload.QueryWinRateByPersonaCategory, table), bigquery.QueryParameter{Name: "run_id", Value: "run-1"})
		var want []result
		groups := map[[2]string][]schemas.EvalResult{}
		for _, r := range run1 {
			k := [2]string{r.PersonaID, r.Category}
			groups[k] = append(groups[k], r)
		}
		for k, rows := range groups {
			b := report.Summarize(rows, "").Overall
			want = append(want, result{k[0], k[1], int64(b.N), int64(b.Wins), int64(b.Losses), int64(b.Ties), int64(b.Errors), nullFloat(b.WinRate)})
		}
		slices.SortFunc(want, func(a, b result) int {
			if a.PersonaID != b.PersonaID {
				return cmpStr(a.PersonaID, b.PersonaID)
			}
			return cmpStr(a.Category, b.Category)
		})
		if !slices.EqualFunc(got, want, func(a, b result) bool {
			return a.PersonaID == b.PersonaID && a.Category == b.Category && a.N == b.N && a.Wins == b.Wins &&
				a.Losses == b.Losses && a.Ties == b.Ties && a.Errors == b.Errors && sameFloat(a.WinRate, b.WinRate)
		}) {
			t.Errorf("got\n%+v\nwant\n%+v", got, want)
		}
		// Spot checks by hand: vegan basic is 2 wins of 4; keto edge_case is one error row.
		for _, r := range got {
			if r.PersonaID == "vegan" && r.Category == schemas.CategoryBasicAlignment && (r.N != 4 || r.WinRate.Float64 != 0.5) {
				t.Errorf("vegan basic_alignment: got n=%d win_rate=%v, want 4, 0.5", r.N, r.WinRate)
			}
			if r.PersonaID == "keto" && r.Category == schemas.CategoryEdgeCase && (r.N != 0 || r.Errors != 1 || r.WinRate.Valid) {
				t.Errorf("keto edge_case: got n=%d errors=%d win_rate=%v, want 0, 1, NULL", r.N, r.Errors, r.WinRate)
			}
		}
	})

	t.Run("violation rates", func(t *testing.T) {
		type result struct {
			PersonaID          string               `bigquery:"persona_id"`
			N                  int64                `bigquery:"n"`
			SFTParsed          int64                `bigquery:"sft_parsed"`
			SFTViolating       int64                `bigquery:"sft_violating"`
			DPOParsed          int64                `bigquery:"dpo_parsed"`
			DPOViolating       int64                `bigquery:"dpo_violating"`
			SFTViolationRate   bigquery.NullFloat64 `bigquery:"sft_violation_rate"`
			DPOViolationRate   bigquery.NullFloat64 `bigquery:"dpo_violation_rate"`
			ViolationReduction bigquery.NullFloat64 `bigquery:"violation_reduction"`
		}
		got := query[result](t, c, bqload.Render(bqload.QueryViolationRates, table), bigquery.QueryParameter{Name: "run_id", Value: "run-1"})
		s := report.Summarize(run1, "")
		var want []result
		for _, p := range []string{"keto", "vegan"} {
			b := s.PerPersona[p]
			want = append(want, result{p, int64(b.N), int64(b.Parsed.SFT), int64(b.Violating.SFT), int64(b.Parsed.DPO), int64(b.Violating.DPO),
				nullFloat(b.ViolationRate.SFT), nullFloat(b.ViolationRate.DPO), nullFloat(b.ViolationReduction)})
		}
		if !slices.EqualFunc(got, want, func(a, b result) bool {
			return a.PersonaID == b.PersonaID && a.N == b.N && a.SFTParsed == b.SFTParsed && a.SFTViolating == b.SFTViolating &&
				a.DPOParsed == b.DPOParsed && a.DPOViolating == b.DPOViolating && sameFloat(a.SFTViolationRate, b.SFTViolationRate) &&
				sameFloat(a.DPOViolationRate, b.DPOViolationRate) && sameFloat(a.ViolationReduction, b.ViolationReduction)
		}) {
			t.Errorf("got\n%+v\nwant\n%+v", got, want)
		}
		// By hand: vegan SFT 3 violating of 5 parsed, DPO 2 of 4 parsed; reduction 1 − 0.5/0.6.
		if len(got) == 2 && (got[1].SFTViolationRate.Float64 != 0.6 || got[1].DPOViolationRate.Float64 != 0.5) {
			t.Errorf("vegan: got sft %v dpo %v, want 0.6, 0.5", got[1].SFTViolationRate, got[1].DPOViolationRate)
		}
	})

	t.Run("trend across runs", func(t *testing.T) {
		type result struct {
			RunDate          civil.Date           `bigquery:"run_date"`
			RunID            string               `bigquery:"run_id"`
			N                int64                `bigquery:"n"`
			Wins             int64                `bigquery:"wins"`
			WinRate          bigquery.NullFloat64 `bigquery:"win_rate"`
			SFTViolationRate bigquery.NullFloat64 `bigquery:"sft_violation_rate"`
			DPOViolationRate bigquery.NullFloat64 `bigquery:"dpo_violation_rate"`
			SFTMeanOverall   bigquery.NullFloat64 `bigquery:"sft_mean_overall"`
			DPOMeanOverall   bigquery.NullFloat64 `bigquery:"dpo_mean_overall"`
		}
		got := query[result](t, c, bqload.Render(bqload.QueryTrend, table),
			bigquery.QueryParameter{Name: "since", Value: civil.Date{Year: 2026, Month: 10, Day: 1}})
		var want []result
		for _, rows := range [][]schemas.EvalResult{run1, run2} {
			b := report.Summarize(rows, "").Overall
			d, _ := civil.ParseDate(rows[0].RunDate)
			want = append(want, result{d, rows[0].RunID, int64(b.N), int64(b.Wins), nullFloat(b.WinRate),
				nullFloat(b.ViolationRate.SFT), nullFloat(b.ViolationRate.DPO),
				nullFloat(&b.MeanScores.SFT.OverallSuitability), nullFloat(&b.MeanScores.DPO.OverallSuitability)})
		}
		if !slices.EqualFunc(got, want, func(a, b result) bool {
			return a.RunDate == b.RunDate && a.RunID == b.RunID && a.N == b.N && a.Wins == b.Wins && sameFloat(a.WinRate, b.WinRate) &&
				sameFloat(a.SFTViolationRate, b.SFTViolationRate) && sameFloat(a.DPOViolationRate, b.DPOViolationRate) &&
				sameFloat(a.SFTMeanOverall, b.SFTMeanOverall) && sameFloat(a.DPOMeanOverall, b.DPOMeanOverall)
		}) {
			t.Errorf("got\n%+v\nwant\n%+v", got, want)
		}
		// By hand: run-1 is 4 wins of 8 judged, run-2 8 of 8.
		if len(got) == 2 && (got[0].WinRate.Float64 != 0.5 || got[1].WinRate.Float64 != 1) {
			t.Errorf("win rates: got %v, %v; want 0.5, 1", got[0].WinRate, got[1].WinRate)
		}
		// A later @since leaves only run-2.
		later := query[result](t, c, bqload.Render(bqload.QueryTrend, table),
			bigquery.QueryParameter{Name: "since", Value: civil.Date{Year: 2026, Month: 11, Day: 2}})
		if len(later) != 1 || later[0].RunID != "run-2" {
			t.Errorf("since 2026-11-02: got %+v, want only run-2", later)
		}
	})
}

// query runs sql and reads every row into T (columns matched by bigquery tags).
func query[T any](t *testing.T, c *bigquery.Client, sql string, params ...bigquery.QueryParameter) []T {
	t.Helper()
	q := c.Query(sql)
	q.Parameters = params
	it, err := q.Read(context.Background())
	if err != nil {
		t.Fatalf("query: %v\n%s", err, sql)
	}
	var out []T
	for {
		var r T
		err := it.Next(&r)
		if err == iterator.Done {
			return out
		}
		if err != nil {
			t.Fatalf("query: %v\n%s", err, sql)
		}
		out = append(out, r)
	}
}

func nullFloat(p *float64) bigquery.NullFloat64 {
	if p == nil {
		return bigquery.NullFloat64{}
	}
	return bigquery.NullFloat64{Float64: *p, Valid: true}
}

func sameFloat(a, b bigquery.NullFloat64) bool {
	return a.Valid == b.Valid && (!a.Valid || math.Abs(a.Float64-b.Float64) < 1e-9)
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

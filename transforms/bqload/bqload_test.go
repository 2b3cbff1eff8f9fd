package bqload

import (
	"bytes"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"cloud.google.com/go/bigquery"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

func row(id, persona, winner string) schemas.EvalResult {
	return schemas.EvalResult{RunID: "run/1 a", RunDate: "2026-11-01", CaseID: id, PersonaID: persona,
		Category: schemas.CategoryBasicAlignment, Winner: winner, Confidence: schemas.ConfidenceHigh,
		SFTViolations: []string{"pork"}, SFTParsedOK: true, DPOParsedOK: true}
}

func TestSchema(t *testing.T) {
	s, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*bigquery.FieldSchema{}
	for _, f := range s {
		byName[f.Name] = f
	}
	tests := []struct {
		name     string
		typ      bigquery.FieldType
		repeated bool
	}{
		{"run_id", bigquery.StringFieldType, false},
		{"run_date", bigquery.DateFieldType, false},
		{"persona_id", bigquery.StringFieldType, false},
		{"sft_scores", bigquery.RecordFieldType, false},
		{"dpo_scores", bigquery.RecordFieldType, false},
		{"order_agreement", bigquery.BooleanFieldType, false},
		{"sft_violations", bigquery.StringFieldType, true},
		{"dpo_violations", bigquery.StringFieldType, true},
		{"prompt_tokens", bigquery.IntegerFieldType, false},
		{"error", bigquery.StringFieldType, false},
	}
	for _, tt := range tests {
		f := byName[tt.name]
		if f == nil {
			t.Errorf("column %s missing", tt.name)
			continue
		}
		if f.Type != tt.typ || f.Repeated != tt.repeated || f.Required {
			t.Errorf("%s: got %s repeated=%v required=%v, want %s repeated=%v required=false",
				tt.name, f.Type, f.Repeated, f.Required, tt.typ, tt.repeated)
		}
	}
	if got := len(byName["sft_scores"].Schema); got != 5 {
		t.Errorf("sft_scores has %d fields, want 5", got)
	}
	for _, f := range byName["sft_scores"].Schema {
		if f.Type != bigquery.FloatFieldType || f.Required {
			t.Errorf("sft_scores.%s: got %s required=%v, want FLOAT nullable", f.Name, f.Type, f.Required)
		}
	}
}

func TestJobID(t *testing.T) {
	a := JobID("run/1 a", "p.d.t", []byte("x"))
	if !regexp.MustCompile(`^recipe_dpo_eval_run_1_a_[0-9a-f]{32}$`).MatchString(a) {
		t.Errorf("JobID = %q, want recipe_dpo_eval_run_1_a_<32 hex>", a)
	}
	for _, other := range []string{
		JobID("run/1 a", "p.d.t", []byte("y")),  // other rows
		JobID("run/1 a", "p.d.t2", []byte("x")), // other table
	} {
		if other == a {
			t.Errorf("JobID %q does not depend on its inputs", a)
		}
	}
	if got := JobID("run/1 a", "p.d.t", []byte("x")); got != a {
		t.Errorf("JobID not deterministic: %q then %q", a, got)
	}
	if got := SanitizeRunID(strings.Repeat("é", 300)); got != "_" {
		t.Errorf("SanitizeRunID(é…) = %q, want _", got)
	}
	if got := len(SanitizeRunID(strings.Repeat("a", 300))); got != 200 {
		t.Errorf("SanitizeRunID of 300 chars has %d, want 200", got)
	}
	if got, want := StagingURI("gs://b/p/", "run/1 a"), "gs://b/p/bq/run_1_a/part-00000"+stagedExt; got != want {
		t.Errorf("StagingURI = %q, want %q", got, want)
	}
}

// TestEncodeDeterministic: the file, hence the job id, does not depend on row order.
func TestEncodeDeterministic(t *testing.T) {
	rows := []schemas.EvalResult{row("c1", "p1", "dpo"), row("c2", "p2", "sft"), row("c3", "p1", "tie"), row("c2", "p2", "dpo")}
	want, err := encode(sortedRows(rows))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		shuffled := slices.Clone(rows)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, err := encode(sortedRows(shuffled))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("shuffle %d: encoding differs:\n%s\nwant\n%s", i, got, want)
		}
	}
	if n := bytes.Count(want, []byte("\n")); n != len(rows) {
		t.Errorf("got %d lines, want %d", n, len(rows))
	}
}

func TestCheckRows(t *testing.T) {
	other := row("c2", "p1", "dpo")
	other.RunID = "run2"
	noDate := row("c3", "p1", "dpo")
	noDate.RunDate = ""
	noRun := row("c4", "p1", "dpo")
	noRun.RunID = ""
	tests := []struct {
		name string
		rows []schemas.EvalResult
		want string // error substring; "" for success
	}{
		{"one run", []schemas.EvalResult{row("c1", "p1", "dpo"), row("c2", "p2", "sft")}, ""},
		{"two runs", []schemas.EvalResult{row("c1", "p1", "dpo"), other}, "several runs"},
		{"no date", []schemas.EvalResult{noDate}, "not YYYY-MM-DD"},
		{"no run id", []schemas.EvalResult{noRun}, "no run_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkRows(tt.rows)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	good := Options{Dataset: "recipe_dpo", Table: "eval_results", Staging: "gs://bucket/x"}
	if err := good.Validate(); err != nil {
		t.Errorf("valid options: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"dataset", func(o *Options) { o.Dataset = "a-b" }, "--bq_dataset"},
		{"table", func(o *Options) { o.Table = "d.t" }, "--bq_table"},
		{"local staging", func(o *Options) { o.Staging = "/tmp/x" }, "--bq_staging"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

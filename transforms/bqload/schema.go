package bqload

import (
	"fmt"
	"sync"

	"cloud.google.com/go/bigquery"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// Column names the table layout depends on.
const (
	ColumnRunID     = "run_id"
	ColumnRunDate   = "run_date"   // the DATE partition column
	ColumnPersonaID = "persona_id" // the clustering column
)

var (
	schemaOnce sync.Once
	schemaVal  bigquery.Schema
	schemaErr  error
)

// Schema is the table schema of schemas.EvalResult: bigquery.InferSchema over its bigquery
// tags (EvalScores become RECORDs, []string REPEATED STRING), with two changes:
//   - run_date is DATE rather than the STRING its Go type infers, so it can partition the
//     table (rows carry it as "YYYY-MM-DD", which every load format converts);
//   - every column is NULLABLE rather than REQUIRED, so that a column added to EvalResult
//     later can be appended to an existing table (ALLOW_FIELD_ADDITION only adds NULLABLE
//     columns) and older rows read it as NULL.
//
// The returned schema is shared: copy it before changing it.
func Schema() (bigquery.Schema, error) {
	schemaOnce.Do(func() {
		s, err := bigquery.InferSchema(schemas.EvalResult{})
		if err != nil {
			schemaErr = fmt.Errorf("bqload: infer schema of EvalResult: %w", err)
			return
		}
		relax(s)
		var date *bigquery.FieldSchema
		for _, f := range s {
			if f.Name == ColumnRunDate {
				date = f
			}
		}
		if date == nil || date.Type != bigquery.StringFieldType {
			schemaErr = fmt.Errorf("bqload: EvalResult has no STRING %s column to turn into DATE", ColumnRunDate)
			return
		}
		date.Type = bigquery.DateFieldType
		date.Description = "Run date (YYYY-MM-DD); the table's day partition."
		schemaVal = s
	})
	return schemaVal, schemaErr
}

// relax makes every non-repeated field NULLABLE.
func relax(s bigquery.Schema) {
	for _, f := range s {
		f.Required = false
		relax(f.Schema)
	}
}

package bqload

import (
	"bytes"
	"encoding/json"
	"fmt"

	"cloud.google.com/go/bigquery"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// The staged file is newline-delimited JSON rather than the Parquet every other stage writes.
// BigQuery's DATE partition column needs run_date as a Parquet DATE (INT32 days) column —
// BigQuery does not document converting a Parquet STRING into DATE — and bigquery-emulator
// v0.8.1 mis-decodes exactly that column (it read 2026-11-01 as year 5688153 and failed the
// load), so a Parquet file could be right for BigQuery or for the tests, not both. JSON
// carries "YYYY-MM-DD" into DATE, objects into RECORD and arrays into REPEATED in both, with
// the explicit schema of Schema(); it also needs no mirror struct of EvalResult.
// encoding/json is deterministic (struct field order, no maps), which the job id relies on.

// stagedExt is the staged file's extension.
const stagedExt = ".json"

// encodeRow renders one row as its newline-delimited-JSON line (without the newline).
func encodeRow(r schemas.EvalResult) ([]byte, error) {
	return json.Marshal(r)
}

// encode renders rows as newline-delimited JSON.
func encode(rows []schemas.EvalResult) ([]byte, error) {
	var buf bytes.Buffer
	for _, r := range rows {
		b, err := encodeRow(r)
		if err != nil {
			return nil, fmt.Errorf("bqload: encode case %s: %w", r.CaseID, err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// configureSource sets the load's source format and schema.
func configureSource(fc *bigquery.FileConfig, schema bigquery.Schema) {
	fc.SourceFormat = bigquery.JSON
	fc.Schema = schema
}

// Package bqload appends one evaluation run's rows (schemas.EvalResult) to a BigQuery table
// through a load job from a file staged on GCS, so that re-running a run never duplicates
// its rows:
//
//  1. the rows are sorted and encoded into one deterministic newline-delimited JSON file
//     (format.go says why not Parquet), staged at <Staging>/bq/<run id>/part-00000.json
//     (transforms/blob);
//  2. the dataset and the table are created if missing (schema from EvalResult, day
//     partitions on the DATE column run_date, clustered by persona_id);
//  3. a WRITE_APPEND load job runs with a deterministic id,
//     recipe_dpo_eval_<run id>_<hash of table + file>: the same rows loaded into the same
//     table always get the same job id. If that job already exists (looked up first, or a
//     409 from jobs.insert when another loader won the race) and succeeded, nothing is
//     loaded again. A job that failed (and so loaded nothing) is retried under <id>_2,
//     <id>_3, …, as is one superseded by a later load of other rows of the run (seen as a
//     different file at the run's staging URI).
//
// The job is looked up before jobs.insert rather than relying on the 409 alone: it costs
// one GET, and bigquery-emulator v0.8.1 loads the rows again before it notices the
// duplicate id (and answers 400), so the tests exercise the same path production takes.
//
// Changed rows for a run id that is already in the table (a re-run whose judge answers or
// timestamps differ) hash to a new job id, and appending them would count the run twice.
// Load therefore refuses with ErrRunLoaded unless Options.Replace is set, in which case it
// first deletes the run's rows with DML (DELETE … WHERE run_id = @run_id) and then loads:
// the run's rows are replaced, never duplicated. The two steps are not one transaction: a
// failure between them leaves the run absent until Load is called again.
//
// The staged file is kept (it is the load's audit trail; expire it with a bucket lifecycle
// rule). Queries analysts run over the table are the Query* constants (see Render).
package bqload

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
)

// JobIDPrefix starts the id of every load job of this package.
const JobIDPrefix = "recipe_dpo_eval_"

// maxAttempts bounds the job ids tried for one file (<id>, <id>_2, …) when earlier
// attempts failed or were superseded.
const maxAttempts = 20

// ErrRunLoaded means the table already holds rows of the run id, loaded from different
// rows than these; set Options.Replace to replace them, or use a new run id.
var ErrRunLoaded = errors.New("bqload: run already loaded with different rows")

// Options says where the rows go.
type Options struct {
	// Dataset and Table name the destination in the client's project; both are created
	// if missing.
	Dataset, Table string
	// Staging is a gs://bucket/prefix the load file is written under (BigQuery loads only
	// from GCS); it must be in the dataset's location.
	Staging string
	// Location is the dataset's location ("US", "EU", "us-central1"): where Load creates
	// it, and where its jobs run and are looked up (a job outside the US is not found
	// without it). Empty: the client's Location, else BigQuery's default (US).
	Location string
	// Replace deletes the run's rows before loading rows that differ from the ones
	// loaded before, instead of failing with ErrRunLoaded.
	Replace bool
}

// Validate checks the options, naming the flag to fix.
func (o Options) Validate() error {
	var errs []error
	if !validName.MatchString(o.Dataset) || len(o.Dataset) > 1024 {
		errs = append(errs, fmt.Errorf("--bq_dataset %q: use letters, digits and underscores", o.Dataset))
	}
	if o.Table == "" || strings.ContainsAny(o.Table, ".`") {
		errs = append(errs, fmt.Errorf("--bq_table %q: give a table name without dataset or quotes", o.Table))
	}
	if !blob.IsGCS(o.Staging) || len(strings.TrimPrefix(o.Staging, "gs://")) < 3 {
		errs = append(errs, fmt.Errorf("--bq_staging %q: BigQuery loads from GCS; give gs://BUCKET/PREFIX", o.Staging))
	}
	return errors.Join(errs...)
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Result describes a finished Load.
type Result struct {
	// JobID is the load job that holds the rows (new or reused).
	JobID string
	// URI is the staged file.
	URI string
	// Rows is the number of rows in the file.
	Rows int
	// Reused is true when the job already existed and nothing was loaded.
	Reused bool
	// Replaced is true when the run's earlier rows were deleted first (Options.Replace).
	Replaced bool
}

// Load appends rows, all of one run id, to o.Dataset.o.Table (see the package comment for
// how re-runs are handled). No rows is a no-op.
func Load(ctx context.Context, client *bigquery.Client, o Options, rows []schemas.EvalResult) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	if len(rows) == 0 {
		return Result{}, nil
	}
	runID, err := checkRows(rows)
	if err != nil {
		return Result{}, err
	}
	data, err := encode(sortedRows(rows))
	if err != nil {
		return Result{}, err
	}
	loc := cmp.Or(o.Location, client.Location)
	table := client.Dataset(o.Dataset).Table(o.Table)
	res := Result{
		JobID: JobID(runID, client.Project()+"."+o.Dataset+"."+o.Table, data),
		URI:   StagingURI(o.Staging, runID),
		Rows:  len(rows),
	}
	if err := ensureTable(ctx, client, o); err != nil {
		return res, err
	}

	current, err := stagedIs(ctx, res.URI, data)
	if err != nil {
		return res, err
	}
	// Find the first attempt id that is free, or one that loaded this file and has not been
	// superseded since.
	id := ""
	for attempt := 1; attempt <= maxAttempts && id == ""; attempt++ {
		candidate := attemptID(res.JobID, attempt)
		job, err := client.JobFromIDLocation(ctx, candidate, loc)
		switch {
		case isStatus(err, http.StatusNotFound):
			id = candidate
		case err != nil:
			return res, fmt.Errorf("bqload: look up job %s: %w", candidate, err)
		default:
			done, err := finished(ctx, job, table)
			if err != nil {
				return res, err
			}
			if done && current {
				res.JobID, res.Reused = candidate, true
				return res, nil
			}
			// That attempt failed and loaded nothing, or other rows of the run were
			// staged (and loaded) after it: try the next id.
		}
	}
	if id == "" {
		return res, fmt.Errorf("bqload: job ids %s to _%d are all taken by failed or superseded loads; see job %s",
			res.JobID, maxAttempts, attemptID(res.JobID, maxAttempts))
	}
	res.JobID = id

	n, err := countRun(ctx, client, table, loc, runID)
	if err != nil {
		return res, err
	}
	if n > 0 {
		if !o.Replace {
			return res, fmt.Errorf("%w: %s.%s has %d rows of run %q; pass a new run id, or replace them (Options.Replace)",
				ErrRunLoaded, o.Dataset, o.Table, n, runID)
		}
		if err := deleteRun(ctx, client, table, loc, runID); err != nil {
			return res, err
		}
		res.Replaced = true
	}

	if err := blob.WriteFile(ctx, res.URI, data); err != nil {
		return res, fmt.Errorf("bqload: stage rows: %w", err)
	}
	if err := runLoad(ctx, client, table, loc, res.URI, id); err != nil {
		return res, err
	}
	return res, nil
}

// stagedIs reports whether the run's staged file is data, or is missing (expired, or staged
// under another prefix: then the job's outcome is trusted). Every load stages its file at
// the run's one URI first, so a different file there means the run's rows were loaded
// from other rows after any job of data, e.g. replaced (Options.Replace): that job being
// done no longer says the table holds data.
func stagedIs(ctx context.Context, uri string, data []byte) (bool, error) {
	got, err := blob.ReadFile(ctx, uri)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("bqload: read staged file: %w", err)
	}
	return bytes.Equal(got, data), nil
}

// checkRows returns the rows' one run id, and checks every row can be loaded.
func checkRows(rows []schemas.EvalResult) (string, error) {
	runID := rows[0].RunID
	for _, r := range rows {
		if r.RunID != runID {
			return "", fmt.Errorf("bqload: rows of several runs (%q, %q): load one run at a time", runID, r.RunID)
		}
		if _, err := time.Parse(time.DateOnly, r.RunDate); err != nil {
			return "", fmt.Errorf("bqload: case %s: run_date %q is not YYYY-MM-DD (it is the DATE partition)", r.CaseID, r.RunDate)
		}
	}
	if runID == "" {
		return "", errors.New("bqload: rows have no run_id")
	}
	return runID, nil
}

// sortedRows orders rows by case id (then by their encoding, for duplicates), so that the
// same rows in any order give the same file: Beam side inputs come in no particular order.
func sortedRows(rows []schemas.EvalResult) []schemas.EvalResult {
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b schemas.EvalResult) int {
		if c := cmp.Compare(a.CaseID, b.CaseID); c != 0 {
			return c
		}
		// Duplicate case ids (not expected): order by content.
		ea, _ := encodeRow(a)
		eb, _ := encodeRow(b)
		return bytes.Compare(ea, eb)
	})
	return out
}

// JobID is the deterministic load job id of a file for a table: the prefix, the run id
// reduced to job-id characters, and a hash of the table and the file. A job id admits
// letters, digits, '_' and '-', up to 1024 characters.
func JobID(runID, table string, data []byte) string {
	h := sha256.New()
	h.Write([]byte(table))
	h.Write([]byte{0})
	h.Write(data)
	return JobIDPrefix + SanitizeRunID(runID) + "_" + hex.EncodeToString(h.Sum(nil))[:32]
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// SanitizeRunID maps a run id to letters, digits, '_' and '-' (at most 200 of them), for
// job ids and object names. Distinct run ids may collide here; the job id's hash does not.
func SanitizeRunID(runID string) string {
	s := unsafeChars.ReplaceAllString(runID, "_")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// StagingURI is where the run's load file is staged.
func StagingURI(staging, runID string) string {
	return blob.Join(staging, "bq", SanitizeRunID(runID), "part-00000"+stagedExt)
}

func attemptID(base string, attempt int) string {
	if attempt == 1 {
		return base
	}
	return fmt.Sprintf("%s_%d", base, attempt)
}

// ensureTable creates the dataset and the table if they are missing.
func ensureTable(ctx context.Context, client *bigquery.Client, o Options) error {
	ds := client.Dataset(o.Dataset)
	if _, err := ds.Metadata(ctx); isStatus(err, http.StatusNotFound) {
		err := ds.Create(ctx, &bigquery.DatasetMetadata{Location: o.Location,
			Description: "recipe-DPO evaluation results"})
		if err != nil && !isStatus(err, http.StatusConflict) {
			return fmt.Errorf("bqload: create dataset %s: %w", o.Dataset, err)
		}
	} else if err != nil {
		return fmt.Errorf("bqload: dataset %s: %w", o.Dataset, err)
	}
	schema, err := Schema()
	if err != nil {
		return err
	}
	t := ds.Table(o.Table)
	if _, err := t.Metadata(ctx); isStatus(err, http.StatusNotFound) {
		err := t.Create(ctx, &bigquery.TableMetadata{
			Description:      "recipe-DPO evaluation: one row per judged test case per run (schemas.EvalResult).",
			Schema:           schema,
			TimePartitioning: &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: ColumnRunDate},
			Clustering:       &bigquery.Clustering{Fields: []string{ColumnPersonaID}},
		})
		if err != nil && !isStatus(err, http.StatusConflict) {
			return fmt.Errorf("bqload: create table %s.%s: %w", o.Dataset, o.Table, err)
		}
	} else if err != nil {
		return fmt.Errorf("bqload: table %s.%s: %w", o.Dataset, o.Table, err)
	}
	return nil
}

// finished waits for an existing job and reports whether it loaded into table; false means
// it failed (a failed load job loads nothing).
func finished(ctx context.Context, job *bigquery.Job, table *bigquery.Table) (bool, error) {
	cfg, err := job.Config()
	if err != nil {
		return false, fmt.Errorf("bqload: job %s: %w", job.ID(), err)
	}
	lc, ok := cfg.(*bigquery.LoadConfig)
	if !ok || lc.Dst == nil || lc.Dst.DatasetID != table.DatasetID || lc.Dst.TableID != table.TableID {
		return false, fmt.Errorf("bqload: job %s exists but is not a load into %s.%s", job.ID(), table.DatasetID, table.TableID)
	}
	status := job.LastStatus()
	if status == nil || !status.Done() {
		if status, err = job.Wait(ctx); err != nil {
			return false, fmt.Errorf("bqload: wait for job %s: %w", job.ID(), err)
		}
	}
	return status.Err() == nil, nil
}

// runLoad runs the load job with the given id. A 409 means the job was created meanwhile
// (a concurrent loader, or a retried insert whose first try got through): its own outcome
// is then the result.
func runLoad(ctx context.Context, client *bigquery.Client, table *bigquery.Table, loc, uri, id string) error {
	schema, err := Schema()
	if err != nil {
		return err
	}
	ref := bigquery.NewGCSReference(uri)
	configureSource(&ref.FileConfig, schema)
	loader := table.LoaderFrom(ref)
	loader.WriteDisposition = bigquery.WriteAppend
	loader.CreateDisposition = bigquery.CreateNever // ensureTable made it, partitioned and clustered
	loader.SchemaUpdateOptions = []string{"ALLOW_FIELD_ADDITION"}
	loader.JobID, loader.Location = id, loc
	job, err := loader.Run(ctx)
	if isStatus(err, http.StatusConflict) {
		if job, err = client.JobFromIDLocation(ctx, id, loc); err != nil {
			return fmt.Errorf("bqload: job %s exists but cannot be read: %w", id, err)
		}
		done, err := finished(ctx, job, table)
		if err != nil {
			return err
		}
		if !done {
			return fmt.Errorf("bqload: load job %s failed: %w", id, job.LastStatus().Err())
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("bqload: start load job %s from %s: %w", id, uri, err)
	}
	status, err := job.Wait(ctx)
	if err != nil {
		return fmt.Errorf("bqload: wait for load job %s: %w", id, err)
	}
	if err := status.Err(); err != nil {
		return fmt.Errorf("bqload: load job %s from %s failed: %w", id, uri, err)
	}
	return nil
}

// countRun counts the table's rows of a run.
func countRun(ctx context.Context, client *bigquery.Client, table *bigquery.Table, loc, runID string) (int64, error) {
	q := client.Query("SELECT COUNT(*) AS n FROM " + tableRef(table) + " WHERE run_id = @run_id")
	q.Parameters = []bigquery.QueryParameter{{Name: "run_id", Value: runID}}
	q.Location = loc
	it, err := q.Read(ctx)
	if err != nil {
		return 0, fmt.Errorf("bqload: count rows of run %q: %w", runID, err)
	}
	var row struct{ N int64 }
	if err := it.Next(&row); err != nil {
		return 0, fmt.Errorf("bqload: count rows of run %q: %w", runID, err)
	}
	return row.N, nil
}

// deleteRun deletes the table's rows of a run.
func deleteRun(ctx context.Context, client *bigquery.Client, table *bigquery.Table, loc, runID string) error {
	q := client.Query("DELETE FROM " + tableRef(table) + " WHERE run_id = @run_id")
	q.Parameters = []bigquery.QueryParameter{{Name: "run_id", Value: runID}}
	q.Location = loc
	job, err := q.Run(ctx)
	if err != nil {
		return fmt.Errorf("bqload: delete rows of run %q: %w", runID, err)
	}
	status, err := job.Wait(ctx)
	if err == nil {
		err = status.Err()
	}
	if err != nil {
		return fmt.Errorf("bqload: delete rows of run %q: %w", runID, err)
	}
	return nil
}

// tableRef is the table's quoted standard-SQL name.
func tableRef(t *bigquery.Table) string {
	return "`" + t.ProjectID + "." + t.DatasetID + "." + t.TableID + "`"
}

// isStatus reports whether err is a googleapi error with HTTP status code.
func isStatus(err error, code int) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == code
}

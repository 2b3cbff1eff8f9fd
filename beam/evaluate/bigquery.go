package evaluate

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/bigquery"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"google.golang.org/api/option"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/bqload"
)

func init() {
	register.DoFn3x1[context.Context, []byte, func(*schemas.EvalResult) bool, error](&bigQueryFn{})
}

// BigQueryConfig says where the result rows go in BigQuery (--bq_dataset, --bq_table,
// --bq_staging, and Beam's --project). Every field is serialized into the job: no secrets;
// workers authenticate with Application Default Credentials.
type BigQueryConfig struct {
	// Project owns the dataset and runs the jobs (Beam's --project).
	Project string
	// Dataset and Table: created if missing (day partitions on run_date, clustered by
	// persona_id).
	Dataset, Table string
	// Staging is the gs://bucket/prefix the load file is staged under, in the dataset's
	// location.
	Staging string
	// Location is the dataset's location ("US", "EU", a region); empty: US.
	Location string
	// Replace replaces the rows of a run id loaded before from different rows, instead of
	// failing (bqload.ErrRunLoaded).
	Replace bool
	// Endpoint overrides the BigQuery API endpoint without authentication (tests: the
	// emulator); empty for production.
	Endpoint string
}

// Enabled reports whether a BigQuery destination is configured.
func (c BigQueryConfig) Enabled() bool { return c.Dataset != "" }

// Validate checks the configuration, naming the flag to fix.
func (c BigQueryConfig) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if c.Project == "" {
		errs = append(errs, errors.New("--bq_dataset needs --project"))
	}
	errs = append(errs, c.options().Validate())
	return errors.Join(errs...)
}

func (c BigQueryConfig) options() bqload.Options {
	return bqload.Options{Dataset: c.Dataset, Table: c.Table, Staging: c.Staging, Location: c.Location, Replace: c.Replace}
}

// WriteBigQuery loads every result row (one run) into BigQuery in one load job once they are
// all in: results is a side input, so the load runs once, after the judging stage. Re-running
// the job, or Beam retrying the bundle, reuses the load job of identical rows instead of
// appending them again (transforms/bqload). cfg must be valid (BigQueryConfig.Validate).
func WriteBigQuery(s beam.Scope, cfg BigQueryConfig, results beam.PCollection) {
	s = s.Scope("BigQuery")
	beam.ParDo0(s, &bigQueryFn{Cfg: cfg}, beam.Impulse(s), beam.SideInput{Input: results})
}

// bigQueryFn stages the rows on GCS and runs the load job.
type bigQueryFn struct {
	Cfg BigQueryConfig

	client *bigquery.Client
}

func (f *bigQueryFn) Setup(ctx context.Context) error {
	var opts []option.ClientOption
	if f.Cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(f.Cfg.Endpoint), option.WithoutAuthentication())
	}
	c, err := bigquery.NewClient(context.WithoutCancel(ctx), f.Cfg.Project, opts...)
	if err != nil {
		return fmt.Errorf("bigquery client for project %s: %w", f.Cfg.Project, err)
	}
	f.client = c
	return nil
}

func (f *bigQueryFn) ProcessElement(ctx context.Context, _ []byte, iter func(*schemas.EvalResult) bool) error {
	var rows []schemas.EvalResult
	for {
		var r schemas.EvalResult // fresh each time: rows keep their slices
		if !iter(&r) {
			break
		}
		rows = append(rows, r)
	}
	res, err := bqload.Load(ctx, f.client, f.Cfg.options(), rows)
	if err != nil {
		return fmt.Errorf("load %d results into %s.%s: %w", len(rows), f.Cfg.Dataset, f.Cfg.Table, err)
	}
	switch {
	case res.Rows == 0:
		log.Infof(ctx, "bigquery: no results to load")
	case res.Reused:
		log.Infof(ctx, "bigquery: %d rows already loaded by job %s", res.Rows, res.JobID)
	default:
		log.Infof(ctx, "bigquery: loaded %d rows from %s into %s.%s (job %s, replaced earlier rows: %v)",
			res.Rows, res.URI, f.Cfg.Dataset, f.Cfg.Table, res.JobID, res.Replaced)
	}
	return nil
}

func (f *bigQueryFn) Teardown() error {
	if f.client != nil {
		return f.client.Close()
	}
	return nil
}

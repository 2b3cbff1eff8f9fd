package main

import (
	"context"
	"flag"
	"path/filepath"
	"testing"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/transforms/blob/gcstest"
	"github.com/pantrypilot/recipe-dpo/transforms/bqload/bqtest"
	"github.com/pantrypilot/recipe-dpo/transforms/localgen/localgentest"
)

// TestEvaluateToBigQuery runs the job with --bq_dataset against goccy/bigquery-emulator (files
// staged on fake-gcs-server), twice with the same run id: the second run must not duplicate
// rows.
func TestEvaluateToBigQuery(t *testing.T) {
	gcstest.Start(t, "bq-staging")
	bq := bqtest.Start(t, "test-project")
	fl := flag.Lookup("project")
	old := fl.Value.String()
	fl.Value.Set(bq.Project)
	t.Cleanup(func() { fl.Value.Set(old) })

	dir, mc := localgentest.TinyModelDir(t)
	adapters := t.TempDir()
	if err := peft.Save(filepath.Join(adapters, "persona_d_japanese_lowsodium_v1.0"), peft.NewRandom(peft.NewConfig(4, 8, 0, "q_proj"), mc, 1), mc); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"--output", out, "--run_id", "bq-run", "--model_dir", dir, "--adapters_dir", adapters,
		"--persona", "persona_d_japanese_lowsodium", "--max_tokens", "4", "--bq_dataset", "recipe_dpo", "--bq_table", "eval_results",
		"--bq_staging", "gs://bq-staging/stage", "--bq_endpoint", bq.Endpoint}
	runJob(t, parse(t, args...))
	runJob(t, parse(t, args...))

	ctx := context.Background()
	it, err := bq.Client.Query("SELECT COUNT(*) AS n, COUNT(DISTINCT case_id) AS cases FROM `test-project.recipe_dpo.eval_results` WHERE run_id = 'bq-run'").Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var row struct{ N, Cases int64 }
	for {
		err := it.Next(&row)
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if row.N != 20 || row.Cases != 20 {
		t.Errorf("BigQuery has %d rows for %d cases after two runs, want 20 and 20", row.N, row.Cases)
	}
	md, err := bq.Client.Dataset("recipe_dpo").Table("eval_results").Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md.TimePartitioning == nil || md.TimePartitioning.Field != "run_date" || md.Clustering == nil || md.Clustering.Fields[0] != "persona_id" {
		t.Errorf("table partitioning %+v clustering %+v; want run_date and persona_id", md.TimePartitioning, md.Clustering)
	}
	_ = bigquery.Schema{}
}

package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/blob/gcstest"
	"github.com/pantrypilot/recipe-dpo/transforms/prompts"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// TestPrepareOnGCS runs the job with prompts read from a Parquet file on gs:// and the run
// root on gs://, against fake-gcs-server through STORAGE_EMULATOR_HOST.
func TestPrepareOnGCS(t *testing.T) {
	gcstest.Start(t, "recipe-runs")
	f := startFakes(t)
	ctx := context.Background()

	ps, err := schemas.DefaultPersonas()
	if err != nil {
		t.Fatal(err)
	}
	persona, _ := schemas.PersonaByID(ps, "persona_e_mexican_vegan")
	in := prompts.Generate(persona, 4, 7)
	data, err := shards.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	promptsPath := "gs://recipe-runs/inputs/prompts.parquet"
	if err := blob.WriteFile(ctx, promptsPath, data); err != nil {
		t.Fatal(err)
	}

	out := "gs://recipe-runs/runs/r1"
	m, report := runJob(t, parse(t, f.args(out, "--prompts", promptsPath, "--persona", persona.ID)...))
	if !m.Balanced {
		t.Fatalf("not balanced: %+v\n%s", m.Stages, report)
	}
	if s := stage(m, schemas.StageFormat); s.Out != 4 {
		t.Errorf("format out = %d, want 4", s.Out)
	}
	for _, sh := range m.Shards {
		if !strings.HasPrefix(sh.Path, out+"/data/") {
			t.Errorf("shard %s is not under %s/data/", sh.Path, out)
		}
	}
	exs, err := shards.ReadDir[schemas.DPOExample](ctx, shards.PersonaDir(out, shards.DirDPOFormatted, persona.ID))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ex := range exs {
		ids = append(ids, ex.ID)
	}
	var want []string
	for _, p := range in {
		want = append(want, p.PromptID)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("examples = %v, want %v", ids, want)
	}
	files, err := blob.List(ctx, out+"/cache/llm")
	if err != nil || len(files) != 12 { // 8 generations + 4 judgements
		t.Errorf("cache files on GCS = %d (%v), want 12", len(files), err)
	}
	assertNoSecrets(t, out)
}

package shards_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/blob/gcstest"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

func examples(n int) []schemas.DPOExample {
	rows := make([]schemas.DPOExample, n)
	for i := range rows {
		lp := -float64(i)
		rows[i] = schemas.DPOExample{
			ID: fmt.Sprintf("ex-%03d", i), PersonaID: "p",
			Prompt: "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n",
			Chosen: "{}<|im_end|>", Rejected: "{ }<|im_end|>",
		}
		if i%2 == 0 {
			rows[i].RefChosenLogp = &lp
		}
	}
	return rows
}

func TestWriteReadIdempotent(t *testing.T) {
	gcstest.Start(t, "shards-bucket")
	for _, root := range []string{t.TempDir(), "gs://shards-bucket/run"} {
		t.Run(root, func(t *testing.T) {
			ctx := context.Background()
			dir := shards.PersonaDir(root, shards.DirDPOFormatted, "p")
			rows := examples(7)
			first, err := shards.Write(ctx, dir, rows, 3, shards.Info{Stage: "format", Kind: shards.KindOut, PersonaID: "p"})
			if err != nil {
				t.Fatal(err)
			}
			if len(first) != 3 || first[2].Rows != 1 || !strings.HasSuffix(first[2].Path, "part-00002-of-00003.parquet") {
				t.Fatalf("shards = %+v, want 3 shards of 3,3,1 rows", first)
			}
			got, err := shards.ReadDir[schemas.DPOExample](ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, rows) {
				t.Errorf("read back %+v, want %+v", got, rows)
			}
			// Same rows, same bytes.
			again, err := shards.Write(ctx, dir, rows, 3, shards.Info{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range again {
				if again[i].SHA256 != first[i].SHA256 {
					t.Errorf("shard %d hash changed on rewrite: %s vs %s", i, again[i].SHA256, first[i].SHA256)
				}
			}
			// Fewer shards: the stale ones go.
			if _, err := shards.Write(ctx, dir, rows[:2], 3, shards.Info{}); err != nil {
				t.Fatal(err)
			}
			files, _ := blob.List(ctx, dir)
			if len(files) != 1 || !strings.HasSuffix(files[0], "part-00000-of-00001.parquet") {
				t.Errorf("files after shrink = %v, want one part-00000-of-00001", files)
			}
		})
	}
}

func TestReadWrongSchema(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "dl")
	if _, err := shards.Write(ctx, dir, []schemas.DeadLetter{{Stage: "x", RecordID: "1", Reason: "r"}}, 0, shards.Info{}); err != nil {
		t.Fatal(err)
	}
	_, err := shards.ReadDir[schemas.DPOExample](ctx, dir)
	if err == nil || !strings.Contains(err.Error(), "missing columns") || !strings.Contains(err.Error(), "chosen") {
		t.Errorf("ReadDir with wrong schema: err = %v, want one naming missing column chosen", err)
	}
}

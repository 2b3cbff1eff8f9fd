package blob_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/blob/gcstest"
)

func TestRoundTrip(t *testing.T) {
	gcstest.Start(t, "test-bucket")
	for _, root := range []string{t.TempDir(), "gs://test-bucket/run1"} {
		t.Run(root, func(t *testing.T) {
			ctx := context.Background()
			p := blob.Join(root, "data", "x", "part-0.parquet")
			if err := blob.WriteFile(ctx, p, []byte("hello")); err != nil {
				t.Fatal(err)
			}
			got, err := blob.ReadFile(ctx, p)
			if err != nil || string(got) != "hello" {
				t.Fatalf("ReadFile = %q, %v; want hello", got, err)
			}
			// An aborted write leaves nothing behind.
			w, err := blob.Create(ctx, blob.Join(root, "data", "aborted"))
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("partial"))
			w.Abort()
			files, err := blob.List(ctx, blob.Join(root, "data"))
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{p}; !slices.Equal(files, want) {
				t.Errorf("List = %v, want %v", files, want)
			}
			if _, err := blob.ReadFile(ctx, blob.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ReadFile(missing) error = %v, want fs.ErrNotExist", err)
			}
			if err := blob.Remove(ctx, p); err != nil {
				t.Fatal(err)
			}
			if files, _ := blob.List(ctx, root); len(files) != 0 {
				t.Errorf("after Remove, List = %v, want empty", files)
			}
		})
	}
}

func TestCheckWritable(t *testing.T) {
	ctx := context.Background()
	if err := blob.CheckWritable(ctx, t.TempDir()); err != nil {
		t.Errorf("CheckWritable(tempdir) = %v", err)
	}
	ro := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(ro, 0o500)
	if os.Getuid() == 0 {
		// root writes anywhere; use a path under a regular file instead.
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o644)
		ro = filepath.Join(f, "sub")
	}
	if err := blob.CheckWritable(ctx, ro); err == nil {
		t.Errorf("CheckWritable(%s) = nil, want an error", ro)
	}
}

// Package blob reads and writes whole files under a run root that is either a local
// directory or a gs://bucket/prefix URL, with the one guarantee every sink and cache of
// recipe-DPO relies on: a file appears under its final name complete or not at all.
//
// It is hand-written rather than Beam's io/filesystem because the trainer reads the same
// shards and must not import Beam; it is ~200 lines over os and cloud.google.com/go/storage.
// GCS is reached through storage.NewClient, which honours STORAGE_EMULATOR_HOST (tests
// point it at fake-gcs-server).
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
)

const gcsScheme = "gs://"

// IsGCS reports whether p is a gs:// URL.
func IsGCS(p string) bool { return strings.HasPrefix(p, gcsScheme) }

// Join joins path elements under a local directory or a gs:// URL.
func Join(base string, elem ...string) string {
	if IsGCS(base) {
		return gcsScheme + path.Join(append([]string{strings.TrimPrefix(base, gcsScheme)}, elem...)...)
	}
	return filepath.Join(append([]string{base}, elem...)...)
}

// splitGCS splits gs://bucket/object into its parts.
func splitGCS(p string) (bucket, object string, err error) {
	rest := strings.TrimPrefix(p, gcsScheme)
	bucket, object, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("blob: %q has no bucket; write gs://BUCKET/PATH", p)
	}
	return bucket, object, nil
}

var (
	gcsOnce   sync.Once
	gcsClient *storage.Client
	gcsErr    error
)

// client returns the process-wide GCS client, created on first use.
func client(ctx context.Context) (*storage.Client, error) {
	gcsOnce.Do(func() {
		// The client outlives ctx: it is shared by every caller in the process.
		gcsClient, gcsErr = storage.NewClient(context.WithoutCancel(ctx))
		if gcsErr != nil {
			gcsErr = fmt.Errorf("blob: GCS client (set GOOGLE_APPLICATION_CREDENTIALS, or STORAGE_EMULATOR_HOST for an emulator): %w", gcsErr)
		}
	})
	return gcsClient, gcsErr
}

// object returns the handle of a gs:// path's object.
func object(ctx context.Context, p string) (*storage.ObjectHandle, error) {
	bucket, obj, err := splitGCS(p)
	if err != nil {
		return nil, err
	}
	c, err := client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Bucket(bucket).Object(obj), nil
}

// ResetClientForTest drops the process-wide GCS client so that a test can point
// STORAGE_EMULATOR_HOST at a new server.
func ResetClientForTest() {
	if gcsClient != nil {
		gcsClient.Close()
	}
	gcsOnce, gcsClient, gcsErr = sync.Once{}, nil, nil
}

// Open opens a file for reading. A missing file gives an error matching fs.ErrNotExist.
func Open(ctx context.Context, p string) (io.ReadCloser, error) {
	if !IsGCS(p) {
		return os.Open(p)
	}
	o, err := object(ctx, p)
	if err != nil {
		return nil, err
	}
	r, err := o.NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, fmt.Errorf("open %s: %w", p, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	return r, nil
}

// ReadFile reads a whole file. A missing file gives an error matching fs.ErrNotExist.
func ReadFile(ctx context.Context, p string) ([]byte, error) {
	r, err := Open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// Writer writes one file atomically: nothing is visible under the final name until Close
// succeeds, and Abort (or a failed Close) leaves nothing behind.
type Writer struct {
	w       io.Writer
	commit  func() error
	abort   func()
	done    bool
	failErr error
}

// Write implements io.Writer.
func (w *Writer) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	if err != nil && w.failErr == nil {
		w.failErr = err
	}
	return n, err
}

// Close commits the file. After a failed Write it aborts and returns that error.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.failErr != nil {
		w.abort()
		return w.failErr
	}
	return w.commit()
}

// Abort discards the file. It is a no-op after Close.
func (w *Writer) Abort() {
	if !w.done {
		w.done = true
		w.abort()
	}
}

// Create starts an atomic write of p. Locally it writes p's directory's hidden temp file and
// renames it on Close; on GCS an object upload is already atomic (readers never see a
// partial object), so it writes the final name and cancels the upload on Abort.
func Create(ctx context.Context, p string) (*Writer, error) {
	if IsGCS(p) {
		o, err := object(ctx, p)
		if err != nil {
			return nil, err
		}
		wctx, cancel := context.WithCancel(ctx)
		ow := o.NewWriter(wctx)
		return &Writer{
			w: ow,
			commit: func() error {
				defer cancel()
				if err := ow.Close(); err != nil {
					return fmt.Errorf("write %s: %w", p, err)
				}
				return nil
			},
			abort: func() { cancel(); _ = ow.Close() },
		}, nil
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", p, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", p, err)
	}
	return &Writer{
		w: f,
		commit: func() error {
			if err := f.Close(); err != nil {
				os.Remove(f.Name())
				return fmt.Errorf("write %s: %w", p, err)
			}
			if err := os.Rename(f.Name(), p); err != nil {
				os.Remove(f.Name())
				return fmt.Errorf("rename %s: %w", p, err)
			}
			return nil
		},
		abort: func() { f.Close(); os.Remove(f.Name()) },
	}, nil
}

// WriteFile writes data to p atomically.
func WriteFile(ctx context.Context, p string, data []byte) error {
	w, err := Create(ctx, p)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return fmt.Errorf("write %s: %w", p, err)
	}
	return w.Close()
}

// List returns every file below dir (recursively), sorted, skipping the hidden temp files
// of unfinished writes. A missing directory lists as empty.
func List(ctx context.Context, dir string) ([]string, error) {
	var out []string
	if IsGCS(dir) {
		bucket, prefix, err := splitGCS(dir)
		if err != nil {
			return nil, err
		}
		c, err := client(ctx)
		if err != nil {
			return nil, err
		}
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		it := c.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: prefix})
		for {
			attrs, err := it.Next()
			if err == iterator.Done {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", dir, err)
			}
			if !strings.HasPrefix(path.Base(attrs.Name), ".") {
				out = append(out, gcsScheme+bucket+"/"+attrs.Name)
			}
		}
	} else {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == dir {
					return filepath.SkipDir
				}
				return err
			}
			if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Remove deletes one file; a missing file is not an error.
func Remove(ctx context.Context, p string) error {
	if !IsGCS(p) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	o, err := object(ctx, p)
	if err != nil {
		return err
	}
	if err := o.Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// CheckWritable verifies that files can be created under dir by writing and removing a
// probe file, so a job fails before it spends money on LLM calls.
func CheckWritable(ctx context.Context, dir string) error {
	probe := Join(dir, ".write-probe")
	if err := WriteFile(ctx, probe, []byte("ok")); err != nil {
		return fmt.Errorf("output %s is not writable (%w); pass an --output you can write to", dir, err)
	}
	return Remove(ctx, probe)
}

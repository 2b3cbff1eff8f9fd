// Package shards writes and reads the Parquet shards every stage of recipe-DPO exchanges,
// laid out under a run root (local directory or gs:// URL, via transforms/blob) as
//
//	<root>/data/<stage dir>/persona=<id>/part-NNNNN-of-MMMMM.parquet
//	<root>/data/dead_letters/<stage>/part-NNNNN-of-MMMMM.parquet
//
// Writes are idempotent: rows are written in the caller's (sorted) order, each shard goes to
// a temporary name and is renamed to its deterministic final name, and shards left over from
// an earlier run with a different shard count are removed afterwards. The same rows therefore
// always produce byte-identical files, which is what lets a Dataflow retry or a re-run of the
// job overwrite its own output safely.
package shards

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
)

// Stage directories under <root>/data.
const (
	DirVariants        = "variants"
	DirPreferencePairs = "preference_pairs"
	DirDPOFormatted    = "dpo_formatted"
	DirDeadLetters     = "dead_letters"
)

// DefaultMaxRows is the default shard size. DPO datasets are small (hundreds of rows per
// persona), so most personas get one shard; the cap keeps row groups and worker memory bounded
// for the spec's full counts and beyond.
const DefaultMaxRows = 5000

// Info describes one written shard.
type Info = schemas.ShardInfo

// Shard kinds.
const (
	KindOut  = schemas.ShardOut
	KindDead = schemas.ShardDead
)

// PersonaDir is the directory of one persona's shards for a stage directory.
func PersonaDir(root, stageDir, personaID string) string {
	return blob.Join(root, "data", stageDir, "persona="+personaID)
}

// DeadLetterDir is the directory of one stage's dead-letter shards.
func DeadLetterDir(root, stage string) string {
	return blob.Join(root, "data", DirDeadLetters, stage)
}

// ShardName is the deterministic file name of shard i of n.
func ShardName(i, n int) string { return fmt.Sprintf("part-%05d-of-%05d.parquet", i, n) }

var shardRE = regexp.MustCompile(`^part-\d{5}-of-\d{5}\.parquet$`)

// writerOptions pin everything that could make two writes of the same rows differ.
func writerOptions() []parquet.WriterOption {
	return []parquet.WriterOption{
		parquet.Compression(&parquet.Zstd),
		parquet.CreatedBy("recipe-dpo", "1", ""),
	}
}

// Encode renders rows as one Parquet file in memory.
func Encode[T any](rows []T) ([]byte, error) {
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows, writerOptions()...); err != nil {
		return nil, fmt.Errorf("encode parquet: %w", err)
	}
	return buf.Bytes(), nil
}

// Write writes rows into dir as ceil(len/maxRows) shards (one empty shard for no rows, so
// that a reader can tell "ran and produced nothing" from "never ran"), then removes any other
// part-* files in dir. info fills Stage, Kind and PersonaID of the returned descriptions.
func Write[T any](ctx context.Context, dir string, rows []T, maxRows int, info Info) ([]Info, error) {
	if maxRows <= 0 {
		maxRows = DefaultMaxRows
	}
	n := (len(rows) + maxRows - 1) / maxRows
	if n == 0 {
		n = 1
	}
	keep := make(map[string]bool, n)
	out := make([]Info, 0, n)
	for i := range n {
		lo, hi := i*maxRows, min((i+1)*maxRows, len(rows))
		data, err := Encode(rows[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("shard %d of %s: %w", i, dir, err)
		}
		p := blob.Join(dir, ShardName(i, n))
		if err := blob.WriteFile(ctx, p, data); err != nil {
			return nil, err
		}
		keep[p] = true
		sum := sha256.Sum256(data)
		si := info
		si.Path, si.Rows, si.Bytes, si.SHA256 = p, int64(hi-lo), int64(len(data)), hex.EncodeToString(sum[:])
		out = append(out, si)
	}
	existing, err := blob.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	for _, p := range existing {
		if !keep[p] && shardRE.MatchString(path.Base(p)) {
			if err := blob.Remove(ctx, p); err != nil {
				return nil, fmt.Errorf("remove stale shard: %w", err)
			}
		}
	}
	return out, nil
}

// ReadFile reads one shard, checking that it has every column T needs: a shard of another
// stage or an older schema gives an error naming the missing columns.
func ReadFile[T any](ctx context.Context, p string) ([]T, error) {
	data, err := blob.ReadFile(ctx, p)
	if err != nil {
		return nil, err
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%s is not a Parquet file: %w", p, err)
	}
	have := map[string]bool{}
	for _, col := range f.Schema().Fields() {
		have[col.Name()] = true
	}
	var missing []string
	for _, col := range parquet.SchemaOf(new(T)).Fields() {
		if !have[col.Name()] {
			missing = append(missing, col.Name())
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s has the wrong schema: missing columns %s (is it a shard of another stage?)", p, strings.Join(missing, ", "))
	}
	rows, err := parquet.Read[T](bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return rows, nil
}

// ReadDir reads every shard below dir (recursively, in path order).
func ReadDir[T any](ctx context.Context, dir string) ([]T, error) {
	files, err := blob.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	var all []T
	for _, p := range files {
		if !strings.HasSuffix(p, ".parquet") {
			continue
		}
		rows, err := ReadFile[T](ctx, p)
		if err != nil {
			return nil, err
		}
		all = append(all, rows...)
	}
	return all, nil
}

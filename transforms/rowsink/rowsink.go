// Package rowsink is the Beam composite every pipeline of recipe-DPO writes its rows with:
// rows are keyed by partition (persona, or stage for dead letters), grouped, sorted by key
// and written as deterministic Parquet shards (transforms/shards), emitting one
// schemas.ShardInfo per shard for the run manifest.
//
// A row type must be registered once with Register[T]() in an init function.
package rowsink

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// Row is what the sink needs of a row type.
type Row interface {
	RowKey() string    // unique within a partition; the sort key
	Partition() string // the directory the row goes to
}

func init() {
	register.Function1x2(markerFn)
	register.Emitter1[schemas.ShardInfo]()
	register.Iter1[*int]()
	beam.RegisterType(reflectTypeOf[schemas.ShardInfo]())
}

// Register registers the sink's DoFns for row type T. Call it from an init function.
func Register[T Row]() {
	register.DoFn1x2[T, string, T](&partitionFn[T]{})
	register.DoFn5x1[context.Context, string, func(*T) bool, func(*int) bool, func(schemas.ShardInfo), error](&writeShardsFn[T]{})
	register.Iter1[*T]()
	register.Emitter1[T]()
	beam.RegisterType(reflectTypeOf[T]())
}

// Spec says where a collection's shards go.
type Spec struct {
	// Dir is the partition directory of a partition: dir(root, partition) must be
	// deterministic, e.g. shards.PersonaDir(root, shards.DirVariants, p).
	Root     string
	Layout   string // LayoutPersona or LayoutDeadLetters
	StageDir string // the stage directory under <root>/data (LayoutPersona), or reports/... for other layouts
	Stage    string // recorded in ShardInfo
	Kind     string // schemas.ShardOut or schemas.ShardDead
	MaxRows  int
}

// Layouts of Spec.
const (
	LayoutPersona     = "persona"      // <root>/data/<StageDir>/persona=<p>/part-*.parquet
	LayoutDeadLetters = "dead_letters" // <root>/data/dead_letters/<stage p>/part-*.parquet
	LayoutPlain       = "plain"        // <root>/<StageDir>/persona=<p>/part-*.parquet
)

func (s Spec) dir(partition string) (string, schemas.ShardInfo) {
	switch s.Layout {
	case LayoutDeadLetters:
		return shards.DeadLetterDir(s.Root, partition), schemas.ShardInfo{Stage: partition, Kind: s.Kind}
	case LayoutPlain:
		return blob.Join(s.Root, s.StageDir, "persona="+partition), schemas.ShardInfo{Stage: s.Stage, Kind: s.Kind, PersonaID: partition}
	}
	return shards.PersonaDir(s.Root, s.StageDir, partition), schemas.ShardInfo{Stage: s.Stage, Kind: s.Kind, PersonaID: partition}
}

// Write keys rows by partition and writes each partition's shards. The partition keys are
// co-grouped in explicitly so that a partition with no rows this run still gets its (empty)
// shard written and any stale shards of an earlier run removed.
func Write[T Row](s beam.Scope, rows beam.PCollection, spec Spec, partitions []string) beam.PCollection {
	s = s.Scope("Write_" + spec.StageDir)
	keys := beam.ParDo(s, markerFn, beam.CreateList(s, partitions))
	keyed := beam.ParDo(s, &partitionFn[T]{}, rows)
	return beam.ParDo(s, &writeShardsFn[T]{Spec: spec}, beam.CoGroupByKey(s, keyed, keys))
}

// partitionFn keys a row by its partition.
type partitionFn[T Row] struct{}

func (*partitionFn[T]) ProcessElement(r T) (string, T) { return r.Partition(), r }

// markerFn makes a partition key co-groupable.
func markerFn(k string) (string, int) { return k, 1 }

// writeShardsFn writes one partition's rows, sorted by key, as deterministic shards.
type writeShardsFn[T Row] struct {
	Spec Spec
}

func (f *writeShardsFn[T]) ProcessElement(ctx context.Context, partition string, rows func(*T) bool, _ func(*int) bool,
	emit func(schemas.ShardInfo)) error {
	var all []T
	var r T
	for rows(&r) {
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b T) int { return strings.Compare(a.RowKey(), b.RowKey()) })
	dir, info := f.Spec.dir(partition)
	infos, err := shards.Write(ctx, dir, all, f.Spec.MaxRows, info)
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	for _, in := range infos {
		emit(in)
	}
	return nil
}

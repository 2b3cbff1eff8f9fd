package prepare

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/rowsink"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

func TestMain(m *testing.M) { ptest.Main(m) }

func init() {
	register.DoFn2x0[[]byte, func(schemas.PreferencePair)](&benchPairsFn{})
}

// benchPairsFn emits N synthetic pairs over 10 personas from an impulse, so the benchmark
// measures the pipeline's data plane rather than encoding a large CreateList into the job.
type benchPairsFn struct{ N int }

func (f *benchPairsFn) ProcessElement(_ []byte, emit func(schemas.PreferencePair)) {
	for _, p := range pairs(f.N, benchPersonas()...) {
		emit(p)
	}
}

func benchPersonas() []string {
	var ps []string
	for i := range 10 {
		ps = append(ps, fmt.Sprintf("persona_%d", i))
	}
	return ps
}

func TestSummarize(t *testing.T) {
	infos := []schemas.ShardInfo{
		{Stage: "generate", Kind: "out", Rows: 7}, {Stage: "generate", Kind: "out", Rows: 2},
		{Stage: "generate", Kind: "dead", Rows: 1}, {Stage: "label", Kind: "out", Rows: 3},
	}
	tallies := map[string]int64{"generate/in": 10, "generate/dead/generate_failed": 1, "label/in": 5}
	got, balanced := Summarize(infos, tallies)
	if balanced {
		t.Error("balanced = true, want false (label: 5 in, 3 out, 0 dead)")
	}
	for _, s := range got {
		switch s.Stage {
		case "generate":
			if s.In != 10 || s.Out != 9 || s.Dead != 1 || !s.Balanced || s.DeadReasons["generate_failed"] != 1 {
				t.Errorf("generate = %+v, want 10 = 9 + 1, balanced", s)
			}
		case "label":
			if s.Balanced {
				t.Errorf("label = %+v, want unbalanced", s)
			}
		}
	}
}

func pairs(n int, personas ...string) []schemas.PreferencePair {
	if len(personas) == 0 {
		personas = []string{"persona_b_indian_veg"}
	}
	ps := make([]schemas.PreferencePair, n)
	for i := range ps {
		persona := personas[i%len(personas)]
		ps[i] = schemas.PreferencePair{
			PairID: fmt.Sprintf("%s-%05d", persona, i), PersonaID: persona,
			Prompt:        fmt.Sprintf("I have paneer, spinach and rice (%d). What can I cook?", i),
			Chosen:        `{"title":"Palak Paneer","cuisine":"Indian","servings":2,"ingredients":[{"name":"paneer","quantity":"200 g"}],"steps":["Cook."],"dietary_tags":["vegetarian"]}`,
			Rejected:      `{"title":"Chicken Curry","cuisine":"Indian","servings":2,"ingredients":[{"name":"chicken","quantity":"300 g"}],"steps":["Cook."],"dietary_tags":[]}`,
			ChosenVariant: "A",
		}
	}
	return ps
}

// TestFormatAndWrite runs the format stage and the sink on prism and reads the shards back.
func TestFormatAndWrite(t *testing.T) {
	root := t.TempDir()
	p, s := beam.NewPipelineWithRoot()
	in := pairs(5)
	in[4].Rejected = in[4].Chosen // identical completions cannot be a DPO example
	cfg := Config{Output: root, ShardRows: 2}
	examples, dead := beam.ParDo2(s, &formatFn{Style: chatml.StyleNeutral}, beam.CreateList(s, in))
	infos := rowsink.Write[schemas.DPOExample](s, examples, rowsink.Spec{Root: cfg.Output, StageDir: shards.DirDPOFormatted,
		Stage: schemas.StageFormat, Kind: schemas.ShardOut, MaxRows: cfg.ShardRows}, []string{"persona_b_indian_veg", "persona_a_korean_spicy"})
	passert.Count(s, dead, "dead", 1)
	passert.Count(s, infos, "shards", 3) // 4 rows in shards of 2, plus persona_a's empty shard
	ptest.RunAndValidate(t, p)

	got, err := shards.ReadDir[schemas.DPOExample](context.Background(), filepath.Join(root, "data", "dpo_formatted"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("read %d examples, want 4", len(got))
	}
	for i, ex := range got {
		if want := in[i].PairID; ex.ID != want {
			t.Errorf("example %d id = %s, want %s (sorted)", i, ex.ID, want)
		}
		if err := ex.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkFormatAndWrite reports format + Parquet records/s on prism and the ratio to a
// plain parquet-go loop writing the same rows (target ≥ 0.3).
func BenchmarkFormatAndWrite(b *testing.B) {
	const n = 50000
	persona := benchPersonas()
	in := pairs(n, persona...)
	for range b.N {
		ctx := context.Background()
		start := time.Now()
		exs := make([]schemas.DPOExample, 0, n)
		for _, p := range in {
			ex, err := chatml.Format(p, schemas.Persona{}, chatml.StyleNeutral)
			if err != nil {
				b.Fatal(err)
			}
			exs = append(exs, ex)
		}
		if _, err := shards.Write(ctx, b.TempDir(), exs, shards.DefaultMaxRows, schemas.ShardInfo{}); err != nil {
			b.Fatal(err)
		}
		plain := float64(n) / time.Since(start).Seconds()

		start = time.Now()
		p, s := beam.NewPipelineWithRoot()
		examples, _ := beam.ParDo2(s, &formatFn{Style: chatml.StyleNeutral}, beam.ParDo(s, &benchPairsFn{N: n}, beam.Impulse(s)))
		rowsink.Write[schemas.DPOExample](s, examples, rowsink.Spec{Root: b.TempDir(), StageDir: shards.DirDPOFormatted,
			Stage: schemas.StageFormat, Kind: schemas.ShardOut}, persona)
		if err := ptest.Run(p); err != nil {
			b.Fatal(err)
		}
		onPrism := float64(n) / time.Since(start).Seconds()
		b.ReportMetric(onPrism, "records/s")
		b.ReportMetric(plain, "plain_records/s")
		b.ReportMetric(onPrism/plain, "ratio_to_plain")
	}
}

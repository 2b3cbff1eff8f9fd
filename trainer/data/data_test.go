package data

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// byteEncoder maps each byte to its value: enough to test lengths and masks.
type byteEncoder struct{}

func (byteEncoder) Encode(s string, _ bool) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}

func example(id, persona, user string, chosen, rejected string) schemas.DPOExample {
	return schemas.DPOExample{ID: id, PersonaID: persona, Prompt: chatml.Prompt("", user),
		Chosen: chatml.Completion(chosen), Rejected: chatml.Completion(rejected)}
}

func TestLoadAndPersonas(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if _, err := Personas(ctx, root); !errors.Is(err, ErrEmpty) {
		t.Errorf("Personas(empty root) error = %v, want ErrEmpty", err)
	}
	for _, p := range []string{"persona_b", "persona_a"} {
		rows := []schemas.DPOExample{example(p+"-2", p, "b", "x", "y"), example(p+"-1", p, "a", "x", "y")}
		if _, err := shards.Write(ctx, shards.PersonaDir(root, shards.DirDPOFormatted, p), rows, 0, schemas.ShardInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := Personas(ctx, root)
	if err != nil || !reflect.DeepEqual(ps, []string{"persona_a", "persona_b"}) {
		t.Fatalf("Personas = %v, %v; want [persona_a persona_b]", ps, err)
	}
	exs, err := Load(ctx, root, "persona_b")
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 2 || exs[0].ID != "persona_b-1" {
		t.Errorf("Load = %v, want 2 examples sorted by id", exs)
	}
	if _, err := Load(ctx, root, "persona_z"); !errors.Is(err, ErrEmpty) {
		t.Errorf("Load(missing persona) error = %v, want ErrEmpty", err)
	}
	// A shard of another stage under dpo_formatted is a schema error, not a silent skip.
	bad := shards.PersonaDir(root, shards.DirDPOFormatted, "persona_c")
	if _, err := shards.Write(ctx, bad, []schemas.DeadLetter{{Stage: "x", RecordID: "1", Reason: "r"}}, 0, schemas.ShardInfo{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, root, "persona_c"); err == nil || !strings.Contains(err.Error(), "wrong schema") {
		t.Errorf("Load(wrong schema) error = %v, want a wrong-schema error", err)
	}
}

func TestTokenizeTruncation(t *testing.T) {
	exs := []schemas.DPOExample{
		example("short", "p", "hi", "ab", "cd"),
		example("long", "p", "hello there", strings.Repeat("c", 100), "r"),
		example("huge-prompt", "p", strings.Repeat("u", 200), "c", "r"),
	}
	promptLen := len(chatml.Prompt("", "hello there"))
	maxLen := promptLen + 20
	got, st := Tokenize(exs, byteEncoder{}, maxLen, promptLen)
	if st != (TruncStats{Examples: 3, Truncated: 2, Dropped: 0}) {
		t.Errorf("stats = %+v, want 3 examples, 2 truncated, 0 dropped", st)
	}
	for _, e := range got {
		if e.Len() > maxLen {
			t.Errorf("example %s has %d tokens, want ≤ %d", e.ID, e.Len(), maxLen)
		}
	}
	long := got[1]
	if len(long.Chosen) != 20 || len(long.Rejected) != len(chatml.Completion("r")) {
		t.Errorf("long: chosen %d, rejected %d tokens; want 20 and untouched", len(long.Chosen), len(long.Rejected))
	}
	// The prompt keeps its end: the assistant header.
	if tail := string(runes(got[2].Prompt)); !strings.HasSuffix(tail, schemas.ChatMLAssistant) || len(got[2].Prompt) != promptLen {
		t.Errorf("huge prompt kept %d tokens ending %q; want %d ending with the assistant header", len(got[2].Prompt), tail[max(0, len(tail)-30):], promptLen)
	}
	// With no room at all the example is dropped.
	_, st = Tokenize(exs[2:], byteEncoder{}, 50, 0)
	if st.Dropped != 1 {
		t.Errorf("stats = %+v, want 1 dropped", st)
	}
}

func runes(ids []int) []byte {
	b := make([]byte, len(ids))
	for i, id := range ids {
		b[i] = byte(id)
	}
	return b
}

func TestBatches(t *testing.T) {
	var exs []Example
	for i := range 40 {
		n := 5 + (i*37)%60
		exs = append(exs, Example{ID: fmt.Sprint(i), Prompt: make([]int, 3), Chosen: make([]int, n), Rejected: make([]int, n/2+1)})
	}
	o := Options{BatchSize: 4, Seed: 1, PadTo: 8, PadID: 0}
	a, b := Batches(exs, o, 0), Batches(exs, o, 0)
	if !reflect.DeepEqual(a, b) {
		t.Error("Batches is not deterministic for the same seed and epoch")
	}
	if reflect.DeepEqual(ids(a), ids(Batches(exs, o, 1))) {
		t.Error("epochs 0 and 1 have the same order; want a new shuffle per epoch")
	}
	if len(a) != 10 {
		t.Fatalf("got %d batches, want 10", len(a))
	}
	batch := a[0]
	if len(batch.Tokens) != 8 || batch.Seq%8 != 0 {
		t.Errorf("batch has %d rows of %d; want 8 rows, Seq a multiple of 8", len(batch.Tokens), batch.Seq)
	}
	e := byID(exs, batch.IDs[0])
	if got := sum(batch.Completion[0]); got != len(e.Chosen) {
		t.Errorf("chosen completion mask sums to %d, want %d", got, len(e.Chosen))
	}
	if got := sum(batch.Completion[4]); got != len(e.Rejected) {
		t.Errorf("rejected completion mask (row B) sums to %d, want %d", got, len(e.Rejected))
	}
	if got := sum(batch.Attention[0]); got != len(e.Prompt)+len(e.Chosen) {
		t.Errorf("attention mask sums to %d, want %d", got, len(e.Prompt)+len(e.Chosen))
	}
	o.Bucket = true
	if pb, pu := meanPadding(Batches(exs, o, 0)), meanPadding(a); pb >= pu {
		t.Errorf("bucketed padding %.2f ≥ unbucketed %.2f; want less", pb, pu)
	}
}

func ids(bs []Batch) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.IDs...)
	}
	return out
}

func byID(exs []Example, id string) Example {
	for _, e := range exs {
		if e.ID == id {
			return e
		}
	}
	return Example{}
}

func sum(xs []int32) int {
	s := 0
	for _, x := range xs {
		s += int(x)
	}
	return s
}

func meanPadding(bs []Batch) float64 {
	p := 0.0
	for _, b := range bs {
		p += b.Padding()
	}
	return p / float64(len(bs))
}

// TestMeasureLengths: each part's mean and longest, and the sequences' (prompt plus the longer
// completion); zero for no examples.
func TestMeasureLengths(t *testing.T) {
	exs := []Example{
		{Prompt: make([]int, 10), Chosen: make([]int, 4), Rejected: make([]int, 7)},
		{Prompt: make([]int, 20), Chosen: make([]int, 9), Rejected: make([]int, 1)},
	}
	got := MeasureLengths(exs)
	want := Lengths{Prompt: Length{15, 20}, Chosen: Length{6.5, 9}, Rejected: Length{4, 7}, Sequence: Length{23, 29}}
	if got != want {
		t.Errorf("MeasureLengths = %+v, want %+v", got, want)
	}
	if got := MeasureLengths(nil); got != (Lengths{}) {
		t.Errorf("MeasureLengths(nil) = %+v, want zeros", got)
	}
}

package sftcorpus

import (
	"context"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/data"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

func TestToDPOExamples(t *testing.T) {
	exs := Generate(personas(t), 25, 5, DefaultOptions())
	rows := ToDPOExamples(exs)
	if len(rows) != len(exs) {
		t.Fatalf("got %d rows, want %d", len(rows), len(exs))
	}
	if !slices.IsSortedFunc(rows, func(a, b schemas.DPOExample) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("rows are not sorted by id")
	}
	byID := map[string]Example{}
	for _, e := range exs {
		byID[e.ID] = e
	}
	for _, r := range rows {
		e := byID[r.ID]
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", r.ID, err)
		}
		if r.PersonaID != CorpusID {
			t.Errorf("%s: got persona %q, want %q", r.ID, r.PersonaID, CorpusID)
		}
		if want := chatml.Prompt(e.System, e.User); r.Prompt != want {
			t.Errorf("%s: got prompt %q, want %q", r.ID, r.Prompt, want)
		}
		if want := chatml.Completion(e.Text); r.Chosen != want {
			t.Errorf("%s: got chosen %q, want %q", r.ID, r.Chosen, want)
		}
		if _, err := schemas.ParseRecipe(r.Rejected); err != nil {
			t.Errorf("%s: rejected is not a recipe: %v", r.ID, err)
		}
	}
	// One example: the rejected answer is a variant of the chosen one, still distinct.
	one := ToDPOExamples(exs[:1])
	if err := one[0].Validate(); err != nil {
		t.Errorf("single example: %v", err)
	}
}

// WriteShards writes what the trainer's sft mode reads: data.Load gets back every row, and a
// second write is byte-identical.
func TestWriteShardsRoundTrip(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	exs := Generate(personas(t), 20, 9, DefaultOptions())
	infos, err := WriteShards(ctx, root, exs)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Rows != int64(len(exs)) || infos[0].PersonaID != CorpusID || infos[0].Stage != ShardStage {
		t.Errorf("got shard infos %+v, want one shard of %d rows for %s", infos, len(exs), CorpusID)
	}
	if want := shards.PersonaDir(root, shards.DirDPOFormatted, CorpusID); !strings.HasPrefix(infos[0].Path, want) {
		t.Errorf("got shard %s, want it under %s", infos[0].Path, want)
	}
	ids, err := data.Personas(ctx, root)
	if err != nil || !slices.Equal(ids, []string{CorpusID}) {
		t.Errorf("data.Personas: got %v, %v; want [%s]", ids, err, CorpusID)
	}
	got, err := data.Load(ctx, root, CorpusID)
	if err != nil {
		t.Fatal(err)
	}
	if want := ToDPOExamples(exs); !reflect.DeepEqual(got, want) {
		t.Errorf("data.Load: got %d rows that differ from the %d written", len(got), len(want))
	}
	again, err := WriteShards(ctx, root, exs)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].SHA256 != infos[0].SHA256 {
		t.Errorf("second write: got sha256 %s, want %s (writes must be idempotent)", again[0].SHA256, infos[0].SHA256)
	}
}

func TestTexts(t *testing.T) {
	exs := Generate(personas(t), 5, 2, DefaultOptions())
	for i, s := range Texts(exs) {
		e := exs[i]
		if !strings.HasPrefix(s, schemas.ChatMLStart+"system\n") || !strings.HasSuffix(s, schemas.ChatMLEnd) {
			t.Errorf("%s: text %q is not a ChatML conversation", e.ID, s)
		}
		if want := e.Prompt() + e.Completion(); s != want {
			t.Errorf("%s: got %q, want prompt + completion", e.ID, s)
		}
	}
}

// The length that matters is in tokens. With a byte-level BPE trained on the corpus the way
// `trainer tokenizer train` does it, recipes stay around 120 tokens.
func TestTokenLengths(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tokenizer")
	}
	exs := Generate(personas(t), 200, 1, DefaultOptions())
	specials := []string{"<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<|pad|>"}
	tok, err := tokenizer.Train(Texts(exs), 3072, specials)
	if err != nil {
		t.Fatal(err)
	}
	var completion, prompt []int
	for _, e := range exs {
		completion = append(completion, len(tok.Encode(e.Completion(), true)))
		prompt = append(prompt, len(tok.Encode(e.Prompt(), true)))
	}
	sort.Ints(completion)
	sort.Ints(prompt)
	med, p95, worst := completion[len(completion)/2], completion[len(completion)*95/100], completion[len(completion)-1]
	t.Logf("vocab %d; completion tokens median %d, p95 %d, max %d; prompt tokens median %d, max %d",
		tok.VocabSize(), med, p95, worst, prompt[len(prompt)/2], prompt[len(prompt)-1])
	if med > 125 || worst > 170 {
		t.Errorf("got completion tokens median %d, max %d; want ≤ 125 and ≤ 170", med, worst)
	}
	if worst := prompt[len(prompt)-1] + worst; worst > 512 {
		t.Errorf("got a prompt + completion of %d tokens, want ≤ 512 (the trainer's default max_prompt_length)", worst)
	}
}

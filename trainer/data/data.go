// Package data turns the data-preparation job's DPOExample shards into token batches for
// the trainer: it reads a persona's shards from a run root (local or gs://), tokenizes
// prompt + completion with the model's tokenizer, truncates to --max_length, and builds
// seeded, length-bucketed batches whose padding it reports.
package data

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// ErrEmpty is returned when a persona has no examples to train on.
var ErrEmpty = errors.New("no training examples")

// FormattedDir is where a run root keeps DPO examples (beam/prepare's output).
func FormattedDir(root string) string { return blob.Join(root, "data", shards.DirDPOFormatted) }

// Personas lists the personas with DPO shards under a run root, sorted.
func Personas(ctx context.Context, root string) ([]string, error) {
	files, err := blob.List(ctx, FormattedDir(root))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, f := range files {
		dir := path.Base(path.Dir(strings.ReplaceAll(f, "\\", "/")))
		if id, ok := strings.CutPrefix(dir, "persona="); ok && strings.HasSuffix(f, ".parquet") {
			seen[id] = true
		}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no persona=<id> shards under %s (run the prepare job first)", ErrEmpty, FormattedDir(root))
	}
	return ids, nil
}

// Load reads and validates one persona's DPO examples, sorted by id.
func Load(ctx context.Context, root, persona string) ([]schemas.DPOExample, error) {
	dir := shards.PersonaDir(root, shards.DirDPOFormatted, persona)
	exs, err := shards.ReadDir[schemas.DPOExample](ctx, dir)
	if err != nil {
		return nil, err
	}
	if len(exs) == 0 {
		return nil, fmt.Errorf("%w for persona %s under %s", ErrEmpty, persona, dir)
	}
	for _, ex := range exs {
		if err := ex.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		if ex.PersonaID != persona {
			return nil, fmt.Errorf("%s: example %s belongs to persona %s", dir, ex.ID, ex.PersonaID)
		}
	}
	slices.SortFunc(exs, func(a, b schemas.DPOExample) int { return strings.Compare(a.ID, b.ID) })
	return exs, nil
}

// Encoder is what the loader needs of a tokenizer.
type Encoder interface {
	// Encode tokenizes text; allowSpecial lets ChatML markers become their special tokens.
	Encode(text string, allowSpecial bool) []int
}

// Example is a tokenized DPO example.
type Example struct {
	ID                       string
	Prompt, Chosen, Rejected []int
}

// Len is the longer of the two sequences.
func (e Example) Len() int { return len(e.Prompt) + max(len(e.Chosen), len(e.Rejected)) }

// Lengths describes tokenized examples' lengths in tokens (after truncation): each part's mean
// and longest, and the sequences' ([Example.Len]): the longest sets a batch's padded length,
// and with it the step's memory.
type Lengths struct {
	Prompt   Length `json:"prompt_tokens"`
	Chosen   Length `json:"chosen_tokens"`
	Rejected Length `json:"rejected_tokens"`
	Sequence Length `json:"sequence_tokens"`
}

// Length is the mean and the maximum of some lengths.
type Length struct {
	Mean float64 `json:"mean"`
	Max  int     `json:"max"`
}

// MeasureLengths measures exs (zero for none).
func MeasureLengths(exs []Example) Lengths {
	var l Lengths
	if len(exs) == 0 {
		return l
	}
	add := func(x *Length, n int) {
		x.Mean += float64(n) / float64(len(exs))
		x.Max = max(x.Max, n)
	}
	for _, e := range exs {
		add(&l.Prompt, len(e.Prompt))
		add(&l.Chosen, len(e.Chosen))
		add(&l.Rejected, len(e.Rejected))
		add(&l.Sequence, e.Len())
	}
	return l
}

// TruncStats counts what --max_length did.
type TruncStats struct {
	Examples  int `json:"examples"`
	Truncated int `json:"truncated"` // kept, with a shortened prompt or completion
	Dropped   int `json:"dropped"`   // no room left for any completion token
}

// Tokenize encodes examples and fits them into maxLength tokens (0 = no limit). As in TRL,
// the prompt keeps its end (the user's request and the assistant header) and is cut from the
// left down to maxPromptLength; completions are cut at the end. An example whose prompt
// leaves no room for a completion token is dropped.
func Tokenize(exs []schemas.DPOExample, enc Encoder, maxLength, maxPromptLength int) ([]Example, TruncStats) {
	st := TruncStats{Examples: len(exs)}
	out := make([]Example, 0, len(exs))
	for _, ex := range exs {
		e := Example{
			ID:       ex.ID,
			Prompt:   enc.Encode(ex.Prompt, true),
			Chosen:   enc.Encode(ex.Chosen, true),
			Rejected: enc.Encode(ex.Rejected, true),
		}
		if maxLength > 0 && e.Len() > maxLength {
			st.Truncated++
			if maxPromptLength > 0 && len(e.Prompt) > maxPromptLength {
				e.Prompt = e.Prompt[len(e.Prompt)-maxPromptLength:]
			}
			room := maxLength - len(e.Prompt)
			if room <= 0 {
				st.Truncated--
				st.Dropped++
				continue
			}
			e.Chosen = e.Chosen[:min(room, len(e.Chosen))]
			e.Rejected = e.Rejected[:min(room, len(e.Rejected))]
		}
		out = append(out, e)
	}
	return out, st
}

// Batch holds B examples as 2B rows: rows [0, B) are prompt+chosen, rows [B, 2B) are
// prompt+rejected, right-padded to Seq tokens.
type Batch struct {
	IDs        []string  // example ids, len B
	Tokens     [][]int32 // [2B][Seq]
	Attention  [][]int32 // [2B][Seq] 1 on real tokens
	Completion [][]int32 // [2B][Seq] 1 on completion tokens (the ones log-probs sum over)
	Seq        int
	Real       int // real (non-pad) tokens in the batch
}

// Padding is the batch's padding fraction.
func (b Batch) Padding() float64 {
	total := len(b.Tokens) * b.Seq
	if total == 0 {
		return 0
	}
	return 1 - float64(b.Real)/float64(total)
}

// Options control batching.
type Options struct {
	BatchSize int   // examples per batch
	Seed      int64 // shuffling seed; epoch e uses (Seed, e)
	Bucket    bool  // group similar lengths to cut padding
	PadTo     int   // round Seq up to a multiple of this (bounds the number of compiled shapes)
	PadID     int32
}

// Batches shuffles examples for an epoch and cuts them into batches. With Bucket, examples
// are sorted by length within windows of 32 batches before cutting, and the batches are then
// shuffled, so similar lengths share a batch while the order stays random. The last batch
// may be smaller.
func Batches(exs []Example, o Options, epoch int) []Batch {
	if o.BatchSize <= 0 {
		o.BatchSize = 1
	}
	r := rand.New(rand.NewPCG(uint64(o.Seed), uint64(epoch)))
	order := make([]Example, len(exs))
	copy(order, exs)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	if o.Bucket {
		window := 32 * o.BatchSize
		for lo := 0; lo < len(order); lo += window {
			w := order[lo:min(lo+window, len(order))]
			slices.SortStableFunc(w, func(a, b Example) int { return a.Len() - b.Len() })
		}
	}
	var out []Batch
	for lo := 0; lo < len(order); lo += o.BatchSize {
		out = append(out, makeBatch(order[lo:min(lo+o.BatchSize, len(order))], o))
	}
	if o.Bucket {
		r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}

func makeBatch(exs []Example, o Options) Batch {
	seq := 0
	for _, e := range exs {
		seq = max(seq, e.Len())
	}
	if o.PadTo > 1 {
		seq = (seq + o.PadTo - 1) / o.PadTo * o.PadTo
	}
	b := Batch{Seq: seq}
	rows := func(completion func(Example) []int) {
		for _, e := range exs {
			tok, att, comp := make([]int32, seq), make([]int32, seq), make([]int32, seq)
			for i := range tok {
				tok[i] = o.PadID
			}
			n := 0
			for _, t := range e.Prompt {
				tok[n], att[n] = int32(t), 1
				n++
			}
			for _, t := range completion(e) {
				tok[n], att[n], comp[n] = int32(t), 1, 1
				n++
			}
			b.Real += n
			b.Tokens, b.Attention, b.Completion = append(b.Tokens, tok), append(b.Attention, att), append(b.Completion, comp)
		}
	}
	for _, e := range exs {
		b.IDs = append(b.IDs, e.ID)
	}
	rows(func(e Example) []int { return e.Chosen })
	rows(func(e Example) []int { return e.Rejected })
	return b
}

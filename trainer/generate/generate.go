// Package generate is batched text generation with a key/value cache for the Llama model of
// package llama: the evaluation job's and the demo's in-process generator.
//
// A batch of prompts is right-padded and run through the model once (prefill), which fills
// the cache and gives each row's first next-token logits at its last prompt token; then one
// token per row is fed per step (decode), each step a forward pass of B tokens over the cache.
// Generating N tokens costs one prefill and N−1 one-token steps, never a recomputation of
// the whole sequence.
//
// Right padding keeps positions simple: a token's position is its index in its own row (what
// llama.Model.Logits computes for an unpadded row) and it lives in cache slot = position, so
// a short row just writes its next token to an earlier slot than a long row, through a
// per-row one-hot write mask. Slots holding a short row's padding are overwritten by its
// generated tokens before any query may attend them (a query at position p attends slots
// 0..p only). Padded rows therefore generate the tokens they would generate alone.
//
// The cache is fixed-size, [B, K, D, L] per layer and for keys and values, with the capacity L
// rounded up to a length bucket, so the decode step compiles once per (batch size, capacity)
// and is reused across steps and calls. It is updated without DynamicUpdateSlice
// (see llama.KVCache).
//
// Sampling runs on the host in float64 from the float32 logits: greedy at temperature 0, else
// softmax(logits/T) restricted to the top-p nucleus, drawn from a PCG seeded per row with
// (Seed, row index), so results are deterministic for a seed and do not depend on how rows
// are batched.
package generate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
)

// Stop reasons of a [Result], as OpenAI's finish_reason.
const (
	// StopReasonStop: a stop string or a stop token was generated.
	StopReasonStop = "stop"
	// StopReasonLength: MaxNewTokens were generated, or the sequence reached the model's
	// max_position_embeddings.
	StopReasonLength = "length"
)

// DefaultMaxBatch is the number of prompts decoded together unless Generator.MaxBatch says
// otherwise: the cache holds MaxBatch × capacity tokens of keys and values per layer.
const DefaultMaxBatch = 8

// Tokenizer turns text into token ids and back. Encode is called with allowSpecial true, so
// ChatML markers in a prompt ("<|im_start|>") become their special tokens.
type Tokenizer interface {
	Encode(text string, allowSpecial bool) []int
	Decode(ids []int) string
}

// Options control one Generate call.
type Options struct {
	// MaxNewTokens is the most tokens generated per prompt (> 0).
	MaxNewTokens int
	// Temperature divides the logits before sampling; 0 is greedy decoding (argmax, lowest id
	// on ties).
	Temperature float64
	// TopP keeps the smallest set of most likely tokens whose probability reaches TopP
	// (nucleus sampling); 0 or 1 keeps every token.
	TopP float64
	// Seed seeds the sampler; the same seed, prompts and options give the same outputs.
	Seed int64
	// StopStrings end a row when its decoded completion contains one; Text is cut before
	// the earliest occurrence.
	StopStrings []string
	// StopTokens end a row when generated (e.g. the id of "<|im_end|>" or "<|eot_id|>");
	// the stop token stays in Tokens but its text is not in Text.
	StopTokens []int
	// Adapter runs the model with its LoRA adapter on or off.
	Adapter llama.Adapter
}

// Validate checks o with messages that name the field to fix.
func (o Options) Validate() error {
	var errs []error
	if o.MaxNewTokens <= 0 {
		errs = append(errs, fmt.Errorf("max_new_tokens (%d) must be > 0", o.MaxNewTokens))
	}
	if !(o.Temperature >= 0) {
		errs = append(errs, fmt.Errorf("temperature (%g) must be >= 0", o.Temperature))
	}
	if !(o.TopP >= 0 && o.TopP <= 1) {
		errs = append(errs, fmt.Errorf("top_p (%g) must be in [0, 1]", o.TopP))
	}
	if slices.Contains(o.StopStrings, "") {
		errs = append(errs, errors.New("stop strings must not be empty"))
	}
	return errors.Join(errs...)
}

// Result is the completion of one prompt.
type Result struct {
	// Text is the decoded completion, without the stop string or stop token that ended it.
	Text string
	// Tokens are every generated token id, including the one that completed a stop.
	Tokens []int
	// StopReason is StopReasonStop or StopReasonLength.
	StopReason string
	// PromptTokens and CompletionTokens count the prompt's and the generated tokens.
	PromptTokens, CompletionTokens int
}

// Generator generates text with a Llama model whose weights (and optional LoRA adapter) live
// in a store. It compiles its graphs lazily, once per batch size, padded prompt length and
// cache capacity, and keeps them for later calls. Its graphs read the store's current
// variable values at every call, so weights changed between calls (a training step, a new
// adapter) are used by the next call.
//
// Generate may be called from several goroutines: calls run one at a time. The store must not
// be modified while a call runs.
type Generator struct {
	// MaxBatch is the most prompts decoded together (DefaultMaxBatch if ≤ 0); longer prompt
	// lists run in consecutive batches. Set it before the first call.
	MaxBatch int

	backend compute.Backend
	store   *model.Store
	model   *llama.Model // a copy without LoRA dropout
	tok     Tokenizer

	mu      sync.Mutex
	prefill map[prefillKey]*model.Exec
	decode  map[llama.Adapter]*model.Exec
}

// New returns a Generator running m's weights in store on backend. m is copied with its LoRA
// dropout off: generation graphs are marked as training only to read current variable values.
func New(backend compute.Backend, store *model.Store, m *llama.Model, tok Tokenizer) (*Generator, error) {
	switch {
	case backend == nil:
		return nil, errors.New("generate: nil backend")
	case store == nil:
		return nil, errors.New("generate: nil store")
	case m == nil:
		return nil, errors.New("generate: nil model")
	case tok == nil:
		return nil, errors.New("generate: nil tokenizer")
	}
	if err := m.Config.Validate(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	mc := *m
	if m.LoRA != nil {
		l := *m.LoRA
		l.Dropout = 0
		mc.LoRA = &l
	}
	return &Generator{
		MaxBatch: DefaultMaxBatch,
		backend:  backend,
		store:    store,
		model:    &mc,
		tok:      tok,
		prefill:  map[prefillKey]*model.Exec{},
		decode:   map[llama.Adapter]*model.Exec{},
	}, nil
}

// Generate completes every prompt and returns one Result per prompt, in order. Prompts are
// encoded with special tokens allowed and must not be empty; a prompt plus its completion
// never exceeds the model's max_position_embeddings (a row reaching it stops with
// StopReasonLength). It returns ctx's error if ctx ends between two decode steps.
func (g *Generator) Generate(ctx context.Context, prompts []string, o Options) ([]Result, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	specs := make([]rowSpec, len(prompts))
	for i, p := range prompts {
		ids, err := g.encode(i, p)
		if err != nil {
			return nil, err
		}
		specs[i] = rowSpec{prompt: ids, maxNew: o.MaxNewTokens, temperature: o.Temperature, topP: o.TopP, seed: o.Seed, stream: uint64(i)}
	}
	return g.run(ctx, specs, o)
}

// Request is one prompt of [Generator.GenerateRequests], with its own sampling settings.
type Request struct {
	Prompt       string
	MaxNewTokens int
	Temperature  float64
	TopP         float64
	// Seed seeds this request's sampler alone: its completion is the one a single-prompt
	// Generate call with the same settings and Seed gives, whatever it is batched with.
	Seed int64
}

// GenerateRequests completes requests as Generate completes prompts, decoding up to MaxBatch
// of them together, each with its own MaxNewTokens, Temperature, TopP and Seed. o gives what
// the rows share (StopStrings, StopTokens, Adapter); its per-row fields are ignored.
func (g *Generator) GenerateRequests(ctx context.Context, reqs []Request, o Options) ([]Result, error) {
	specs := make([]rowSpec, len(reqs))
	for i, r := range reqs {
		ro := o
		ro.MaxNewTokens, ro.Temperature, ro.TopP, ro.Seed = r.MaxNewTokens, r.Temperature, r.TopP, r.Seed
		if err := ro.Validate(); err != nil {
			return nil, fmt.Errorf("generate: request %d: %w", i, err)
		}
		ids, err := g.encode(i, r.Prompt)
		if err != nil {
			return nil, err
		}
		specs[i] = rowSpec{prompt: ids, maxNew: r.MaxNewTokens, temperature: r.Temperature, topP: r.TopP, seed: r.Seed}
	}
	return g.run(ctx, specs, o)
}

// encode tokenizes prompt i and checks it fits the model.
func (g *Generator) encode(i int, prompt string) ([]int, error) {
	maxPos := g.model.Config.MaxPositionEmbeddings
	ids := g.tok.Encode(prompt, true)
	switch n := len(ids); {
	case n == 0:
		return nil, fmt.Errorf("generate: prompt %d encodes to no tokens", i)
	case n >= maxPos:
		return nil, fmt.Errorf("generate: prompt %d has %d tokens, the model's max_position_embeddings is %d", i, n, maxPos)
	}
	for _, id := range ids {
		if id < 0 || id >= g.model.Config.VocabSize {
			return nil, fmt.Errorf("generate: prompt %d has token id %d outside the vocabulary (%d)", i, id, g.model.Config.VocabSize)
		}
	}
	return ids, nil
}

// rowSpec is what one row is asked to do; its sampler is PCG(seed, stream).
type rowSpec struct {
	prompt      []int
	maxNew      int
	temperature float64
	topP        float64
	seed        int64
	stream      uint64
}

// run decodes specs in batches of MaxBatch, one call at a time.
func (g *Generator) run(ctx context.Context, specs []rowSpec, o Options) ([]Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	batch := g.MaxBatch
	if batch <= 0 {
		batch = DefaultMaxBatch
	}
	results := make([]Result, 0, len(specs))
	for start := 0; start < len(specs); start += batch {
		end := min(start+batch, len(specs))
		res, err := g.generateBatch(ctx, specs[start:end], o)
		if err != nil {
			return nil, err
		}
		results = append(results, res...)
	}
	return results, nil
}

// row is the decoding state of one prompt.
type row struct {
	rowSpec
	limit int // most tokens this row may generate
	rng   *rand.Rand
	res   Result
	done  bool
}

// generateBatch runs one batch of rows.
func (g *Generator) generateBatch(ctx context.Context, specs []rowSpec, o Options) ([]Result, error) {
	maxPos := g.model.Config.MaxPositionEmbeddings
	rows := make([]*row, len(specs))
	prompts := make([][]int, len(specs))
	longest, need := 0, 0 // need: slots the cache must hold
	for i, sp := range specs {
		p := sp.prompt
		r := &row{rowSpec: sp, limit: min(sp.maxNew, maxPos-len(p))}
		r.rng = rand.New(rand.NewPCG(uint64(sp.seed), sp.stream))
		r.res.PromptTokens = len(p)
		rows[i], prompts[i] = r, p
		longest = max(longest, len(p))
		// The last generated token is never fed back: positions go up to len+limit−2.
		need = max(need, len(p)+r.limit-1)
	}
	promptLen := bucket(longest, promptStep)
	s, err := newSession(g, o.Adapter, len(rows), promptLen, max(promptLen, bucket(need, capacityStep)))
	if err != nil {
		return nil, err
	}
	defer s.close()

	logits, err := s.prefill(prompts)
	if err != nil {
		return nil, err
	}
	var samp sampler
	for {
		for i, r := range rows {
			if !r.done {
				g.accept(r, samp.sample(logits[i], r.temperature, r.topP, r.rng), o)
			}
		}
		if !slices.ContainsFunc(rows, func(r *row) bool { return !r.done }) {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		feed := make([]int32, len(rows))
		positions := make([]int32, len(rows))
		for i, r := range rows {
			// A finished row keeps rewriting the slot of its last token: harmless, in range.
			feed[i] = int32(r.res.Tokens[len(r.res.Tokens)-1])
			positions[i] = int32(len(r.prompt) + len(r.res.Tokens) - 1)
		}
		if logits, err = s.step(feed, positions); err != nil {
			return nil, err
		}
	}
	out := make([]Result, len(rows))
	for i, r := range rows {
		r.res.CompletionTokens = len(r.res.Tokens)
		out[i] = r.res
	}
	return out, nil
}

// accept appends tok to r and decides whether r is done, setting Text and StopReason then.
func (g *Generator) accept(r *row, tok int, o Options) {
	r.res.Tokens = append(r.res.Tokens, tok)
	if slices.Contains(o.StopTokens, tok) {
		r.done, r.res.StopReason = true, StopReasonStop
		r.res.Text = g.tok.Decode(r.res.Tokens[:len(r.res.Tokens)-1])
		if cut := firstStop(r.res.Text, o.StopStrings); cut >= 0 {
			r.res.Text = r.res.Text[:cut]
		}
		return
	}
	if len(o.StopStrings) > 0 {
		// The whole completion is decoded again: a token may complete a character (byte
		// fallback) or a stop string begun by earlier tokens.
		text := g.tok.Decode(r.res.Tokens)
		if cut := firstStop(text, o.StopStrings); cut >= 0 {
			r.done, r.res.StopReason, r.res.Text = true, StopReasonStop, text[:cut]
			return
		}
	}
	if len(r.res.Tokens) >= r.limit {
		r.done, r.res.StopReason = true, StopReasonLength
		r.res.Text = g.tok.Decode(r.res.Tokens)
	}
}

// firstStop returns the byte offset of the earliest stop string in text, or −1.
func firstStop(text string, stops []string) int {
	cut := -1
	for _, s := range stops {
		if i := strings.Index(text, s); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	return cut
}

// Package localgen generates recipes in-process with the project's GoMLX Llama
// (trainer/generate): the Generator the offline demo and the evaluation job use instead of an
// OpenAI-compatible endpoint. A model is loaded once per process (Shared) and serves every
// DoFn instance; calls go through the shared llm.Caller, so the content-addressed call cache
// makes re-runs free exactly as for remote endpoints.
package localgen

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/generate"
	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// Config names a model: a base directory, optionally with an SFT adapter and a further
// (e.g. DPO) adapter, both merged into the weights at load.
type Config struct {
	ModelDir   string // Hugging Face Llama directory (config.json, model.safetensors, tokenizer.json)
	Tokenizer  string // tokenizer.json; default <ModelDir>/tokenizer.json
	SFTAdapter string // PEFT adapter merged first (optional)
	Adapter    string // PEFT adapter merged on top, e.g. trained_models/<persona>_v1.0 (optional)
	Backend    string // GoMLX backend ("" = $GOMLX_BACKEND or the pure-Go one)
	MaxBatch   int    // prompts decoded together (0 = generate's default)
	// Replicas is how many copies of the model are loaded (0 means 1). A copy decodes one
	// batch at a time and, on the CPU backend, keeps about one core busy, so concurrent calls
	// run on that many copies at once: one per core on a CPU. Memory grows with it.
	Replicas int
}

// Model is a loaded model ready to generate: one or more identical copies (Config.Replicas).
// Its methods are safe for concurrent use; each call decodes on a free copy.
type Model struct {
	free chan *generate.Generator // the copies not decoding now
	name string                   // content identity, for cache keys
}

// Load reads the model and merges its adapters (generate.Load), Replicas times; executors
// compile on first use.
func Load(c Config) (*Model, error) {
	n := max(1, c.Replicas)
	m := &Model{free: make(chan *generate.Generator, n)}
	for range n {
		g, digest, err := generate.Load(generate.Model{ModelDir: c.ModelDir, Tokenizer: c.Tokenizer,
			SFTAdapter: c.SFTAdapter, Adapter: c.Adapter, Backend: c.Backend})
		if err != nil {
			return nil, fmt.Errorf("localgen: %w", err)
		}
		if c.MaxBatch > 0 {
			g.MaxBatch = c.MaxBatch
		}
		m.name = "local:" + digest[:16]
		m.free <- g
	}
	return m, nil
}

// generate decodes reqs on a free copy of the model, waiting for one.
func (m *Model) generate(ctx context.Context, reqs []generate.Request, o generate.Options) ([]generate.Result, error) {
	var g *generate.Generator
	select {
	case g = <-m.free:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { m.free <- g }()
	return g.GenerateRequests(ctx, reqs, o)
}

type entry struct {
	once sync.Once
	m    *Model
	err  error
}

var shared sync.Map // Config -> *entry

// Shared loads each Config once per process: Beam DoFn instances on one worker share it.
func Shared(c Config) (*Model, error) {
	e, _ := shared.LoadOrStore(c, &entry{})
	en := e.(*entry)
	en.once.Do(func() { en.m, en.err = Load(c) })
	return en.m, en.err
}

// Name is the model's content identity ("local:<digest prefix>").
func (m *Model) Name() string { return m.name }

// answer is what a call returns and the cache stores.
type answer struct {
	Text             string `json:"text"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	LatencyMS        int64  `json:"latency_ms"`
	StopReason       string `json:"stop_reason"`
}

// generator adapts a Model to llm.Generator.
type generator struct {
	m      *Model
	caller *llm.Caller
}

// NewGenerator returns an llm.Generator over m whose calls go through caller (cache and
// concurrency limits; rate limits are irrelevant in-process but harmless).
func NewGenerator(m *Model, caller *llm.Caller) llm.Generator { return generator{m: m, caller: caller} }

// Generate renders the request as ChatML, generates until <|im_end|> or MaxTokens, and
// returns the text. The request's Model field is informational: the loaded model answers.
func (g generator) Generate(ctx context.Context, req llm.GenerateRequest) (llm.GenerateResponse, error) {
	resps, errs := g.GenerateBatch(ctx, []llm.GenerateRequest{req})
	return resps[0], errs[0]
}

// GenerateBatch implements llm.BatchGenerator: the requests not in the cache are decoded
// together (generate.Generator.GenerateRequests), each with its own sampling settings and
// seed, so every answer is the one a call of its own gives.
func (g generator) GenerateBatch(ctx context.Context, reqs []llm.GenerateRequest) ([]llm.GenerateResponse, []error) {
	prompts, keys := make([]string, len(reqs)), make([]string, len(reqs))
	for i, req := range reqs {
		prompts[i] = chatml.Prompt(req.System, req.User)
		keys[i] = llm.CacheKey(struct {
			Kind, Model, Prompt string
			Temperature, TopP   float64
			MaxTokens           int
			Seed                int64
			// Omitted when off, so answers cached before penalties existed keep their keys.
			Presence  float64 `json:",omitempty"`
			Frequency float64 `json:",omitempty"`
		}{"localgen/v1", g.m.name, prompts[i], req.Temperature, req.TopP, req.MaxTokens, req.Seed,
			req.PresencePenalty, req.FrequencyPenalty})
	}
	bodies, hits, err := g.caller.DoBatch(ctx, keys, 0, func(ctx context.Context, missing []int) ([]llm.Result, error) {
		start := time.Now()
		rs := make([]generate.Request, len(missing))
		for j, i := range missing {
			rs[j] = generate.Request{Prompt: prompts[i], MaxNewTokens: reqs[i].MaxTokens, Temperature: reqs[i].Temperature,
				TopP: topP(reqs[i].TopP), Seed: reqs[i].Seed,
				PresencePenalty: reqs[i].PresencePenalty, FrequencyPenalty: reqs[i].FrequencyPenalty}
		}
		res, err := g.m.generate(ctx, rs, generate.Options{StopStrings: []string{schemas.ChatMLEnd}, Adapter: llama.AdapterOff})
		if err != nil {
			return nil, err
		}
		// A batch's rows finish together: each records the batch's latency.
		latency := time.Since(start).Milliseconds()
		out := make([]llm.Result, len(res))
		for j, r := range res {
			a := answer{Text: r.Text, PromptTokens: int64(r.PromptTokens), CompletionTokens: int64(r.CompletionTokens),
				LatencyMS: latency, StopReason: r.StopReason}
			b, err := json.Marshal(a)
			if err != nil {
				return nil, err
			}
			out[j] = llm.Result{Body: b, PromptTokens: a.PromptTokens, CompletionTokens: a.CompletionTokens}
		}
		return out, nil
	})
	resps, errs := make([]llm.GenerateResponse, len(reqs)), make([]error, len(reqs))
	for i := range reqs {
		if bodies[i] == nil {
			errs[i] = fmt.Errorf("localgen %s: %w", g.m.name, err)
			continue
		}
		var a answer
		if err := json.Unmarshal(bodies[i], &a); err != nil {
			errs[i] = fmt.Errorf("localgen %s: cached answer: %w", g.m.name, err)
			continue
		}
		resps[i] = llm.GenerateResponse{Text: a.Text, Model: g.m.name, PromptTokens: a.PromptTokens, CompletionTokens: a.CompletionTokens,
			LatencyMS: a.LatencyMS, CacheKey: keys[i], CacheHit: hits[i]}
	}
	return resps, errs
}

func topP(p float64) float64 {
	if p <= 0 {
		return 1
	}
	return p
}

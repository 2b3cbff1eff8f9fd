// Package variants turns a prompt into the two generation requests of stage 1 — variant A
// with the persona's constraints spelled out (T=0.7) and variant B with only a hint of its
// cuisine (T=0.9) — and a generator's answer into a Variant row.
package variants

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// Spec holds the generation settings shared by every request of a run.
type Spec struct {
	Model     string  // generator model; with vLLM, the LoRA adapter name (e.g. "sft")
	MaxTokens int     // completion budget per recipe
	Seed      int64   // run seed; each request derives its own from it
	TempA     float64 // variant A temperature (spec: 0.7)
	TempB     float64 // variant B temperature (spec: 0.9)
	TopP      float64
	// PresencePenalty and FrequencyPenalty (OpenAI semantics, 0 = off) for both variants.
	PresencePenalty, FrequencyPenalty float64
}

// DefaultSpec returns the spec's settings (PIPELINE.md §3.1).
func DefaultSpec() Spec {
	return Spec{Model: "sft", MaxTokens: 1024, Seed: 42, TempA: 0.7, TempB: 0.9, TopP: 1}
}

// Validate checks the settings, naming the flag to fix.
func (s Spec) Validate() error {
	switch {
	case s.Model == "":
		return fmt.Errorf("--generator_model is empty")
	case s.MaxTokens <= 0:
		return fmt.Errorf("--max_tokens must be > 0, got %d", s.MaxTokens)
	// Negated ranges, so that NaN (which flag.Float64 accepts) fails them too.
	case !(s.TempA >= 0 && s.TempA <= 2) || !(s.TempB >= 0 && s.TempB <= 2):
		return fmt.Errorf("--temperature_a/--temperature_b must lie in [0, 2], got %g/%g", s.TempA, s.TempB)
	case !(s.TopP > 0 && s.TopP <= 1):
		return fmt.Errorf("--top_p must lie in (0, 1], got %g", s.TopP)
	}
	return llm.ValidatePenalties(s.PresencePenalty, s.FrequencyPenalty)
}

// Request is one generation request of a prompt.
type Request struct {
	Variant string // schemas.VariantA or VariantB
	llm.GenerateRequest
}

// Requests returns the A and B requests for a prompt. Each carries a seed derived from the
// run seed, the prompt id and the variant, so sampling (and the call cache key) is
// reproducible per request and independent of the order requests are made in.
func Requests(s Spec, p schemas.Persona, pr schemas.Prompt) [2]Request {
	mk := func(v, system string, temp float64) Request {
		return Request{Variant: v, GenerateRequest: llm.GenerateRequest{
			Model: s.Model, System: system, User: pr.Request,
			Temperature: temp, TopP: s.TopP, MaxTokens: s.MaxTokens,
			PresencePenalty: s.PresencePenalty, FrequencyPenalty: s.FrequencyPenalty,
			Seed: DeriveSeed(s.Seed, pr.PromptID, v),
		}}
	}
	return [2]Request{
		mk(schemas.VariantA, chatml.StrongSystem(p), s.TempA),
		mk(schemas.VariantB, chatml.WeakSystem(p), s.TempB),
	}
}

// DeriveSeed mixes the run seed with a record's identity (FNV-1a), kept to 31 bits because
// some OpenAI-compatible servers reject larger seeds.
func DeriveSeed(seed int64, parts ...string) int64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int64(h.Sum64() & 0x7fffffff)
}

// Row builds the Variant row for a request and its answer, recording whether the text
// parses as a Recipe.
func Row(pr schemas.Prompt, req Request, resp llm.GenerateResponse) schemas.Variant {
	v := schemas.Variant{
		PromptID: pr.PromptID, PersonaID: pr.PersonaID, Variant: req.Variant,
		System: req.System, User: req.User, Temperature: req.Temperature,
		Model: resp.Model, Text: resp.Text,
		PromptTokens: resp.PromptTokens, CompletionTokens: resp.CompletionTokens,
		LatencyMS: resp.LatencyMS, CacheKey: resp.CacheKey,
	}
	if v.Model == "" {
		v.Model = req.Model
	}
	if _, err := schemas.ParseRecipe(resp.Text); err != nil {
		v.ParseError = err.Error()
	} else {
		v.ParsedOK = true
	}
	return v
}

package prepare

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/fanout"
	"github.com/pantrypilot/recipe-dpo/transforms/label"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/rowsink"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
	"github.com/pantrypilot/recipe-dpo/transforms/variants"
)

// Beam metrics: real calls, cache hits, retries and failures per LLM role. They describe
// this run's traffic (a cached re-run shows zero calls); the manifest's counts describe data.
var (
	genCalls      = beam.NewCounter("recipe_dpo", "generator_calls")
	genHits       = beam.NewCounter("recipe_dpo", "generator_cache_hits")
	genFailures   = beam.NewCounter("recipe_dpo", "generator_failures")
	judgeCalls    = beam.NewCounter("recipe_dpo", "judge_calls")
	judgeHits     = beam.NewCounter("recipe_dpo", "judge_cache_hits")
	judgeFailures = beam.NewCounter("recipe_dpo", "judge_failures")
	retries       = beam.NewCounter("recipe_dpo", "llm_retries")
)

func personaMap(ps []schemas.Persona) map[string]schemas.Persona {
	m := make(map[string]schemas.Persona, len(ps))
	for _, p := range ps {
		m[p.ID] = p
	}
	return m
}

func deadLetter(stage, persona, id, reason, detail string, record any) schemas.DeadLetter {
	payload, err := json.Marshal(record)
	if err != nil {
		payload = []byte(fmt.Sprintf("%q", fmt.Sprint(record)))
	}
	return schemas.DeadLetter{Stage: stage, PersonaID: persona, RecordID: id, Reason: reason, Detail: detail, Payload: string(payload)}
}

// validatePromptFn passes valid prompts of known personas and dead-letters the rest.
type validatePromptFn struct {
	Personas []string
}

func (f *validatePromptFn) ProcessElement(p schemas.Prompt, emit func(schemas.Prompt), emitDead func(schemas.DeadLetter)) {
	id := p.PromptID
	if id == "" {
		id = "(no prompt_id)"
	}
	switch {
	case p.Validate() != nil:
		emitDead(deadLetter(schemas.StagePrompts, p.PersonaID, id, schemas.ReasonInvalidPrompt, p.Validate().Error(), p))
	case !slices.Contains(f.Personas, p.PersonaID):
		emitDead(deadLetter(schemas.StagePrompts, p.PersonaID, id, schemas.ReasonUnknownPersona,
			fmt.Sprintf("persona %q is not among this run's personas %v", p.PersonaID, f.Personas), p))
	default:
		emit(p)
	}
}

// batchKeyFn keys prompts or variants by batch; variants of one prompt share a batch.
type batchKeyFn[T rowsink.Row] struct {
	N        int
	ByPrompt bool // key Variants by prompt id rather than their own key
}

func (f *batchKeyFn[T]) ProcessElement(r T) (int, T) {
	k := r.RowKey()
	if f.ByPrompt {
		k, _, _ = strings.Cut(k, "/")
	}
	return fanout.BatchKey(k, f.N), r
}

// generateFn generates variants A and B for a batch of prompts, calls fanned out
// concurrently under the shared rate limiter.
type generateFn struct {
	Gen       GeneratorConfig
	CacheRoot string
	NoCache   bool
	Personas  []schemas.Persona

	gen      llm.Generator
	caller   *llm.Caller
	personas map[string]schemas.Persona
}

func (f *generateFn) Setup(ctx context.Context) error {
	f.personas = personaMap(f.Personas)
	var err error
	f.gen, f.caller, err = newGenerator(ctx, f.Gen, f.CacheRoot, f.NoCache)
	return err
}

func (f *generateFn) ProcessElement(ctx context.Context, _ int, iter func(*schemas.Prompt) bool,
	emit func(schemas.Variant), emitDead func(schemas.DeadLetter)) error {
	var prompts []schemas.Prompt
	var p schemas.Prompt
	for iter(&p) {
		prompts = append(prompts, p)
	}
	slices.SortFunc(prompts, func(a, b schemas.Prompt) int { return strings.Compare(a.PromptID, b.PromptID) })
	type job struct {
		pr  schemas.Prompt
		req variants.Request
	}
	var jobs []job
	for _, pr := range prompts {
		for _, req := range variants.Requests(f.Gen.Spec, f.personas[pr.PersonaID], pr) {
			jobs = append(jobs, job{pr, req})
		}
	}
	reqs := make([]llm.GenerateRequest, len(jobs))
	for i, j := range jobs {
		reqs[i] = j.req.GenerateRequest
	}
	before := f.caller.Stats().Retries.Load()
	resps, errs, err := llm.GenerateAll(ctx, f.gen, reqs, f.Gen.Limits.Concurrency, f.Gen.DecodeBatch)
	retries.Inc(ctx, f.caller.Stats().Retries.Load()-before)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	for i, j := range jobs {
		if errs[i] != nil {
			genFailures.Inc(ctx, 1)
			log.Warnf(ctx, "generate %s/%s: %v", j.pr.PromptID, j.req.Variant, errs[i])
			emitDead(deadLetter(schemas.StageGenerate, j.pr.PersonaID, j.pr.PromptID+"/"+j.req.Variant,
				schemas.ReasonGenerateFailed, llm.Classify(errs[i])+": "+errs[i].Error(), j.pr))
			continue
		}
		if resps[i].CacheHit {
			genHits.Inc(ctx, 1)
		} else {
			genCalls.Inc(ctx, 1)
		}
		emit(variants.Row(j.pr, j.req, resps[i]))
	}
	return nil
}

// labelFn pairs a batch's variants by prompt and labels each pair, judge calls fanned out
// concurrently. It also emits tallies: prompts labelled and judge tokens.
type labelFn struct {
	Labeler   LabelerConfig
	CacheRoot string
	NoCache   bool
	Personas  []schemas.Persona

	labeler  *label.Labeler
	caller   *llm.Caller
	personas map[string]schemas.Persona
}

func (f *labelFn) Setup(ctx context.Context) error {
	f.personas = personaMap(f.Personas)
	f.labeler = &label.Labeler{Rules: rules.New(), Veto: f.Labeler.Veto}
	if f.Labeler.Kind == LabelerGroq {
		judge, caller, err := newJudge(ctx, f.Labeler, f.CacheRoot, f.NoCache)
		if err != nil {
			return err
		}
		f.labeler.Judge, f.caller = judge, caller
	}
	return nil
}

func (f *labelFn) ProcessElement(ctx context.Context, _ int, iter func(*schemas.Variant) bool,
	emit func(schemas.PreferencePair), emitDead func(schemas.DeadLetter), tally func(string, int64)) error {
	byPrompt := map[string]*[2]*schemas.Variant{}
	var v schemas.Variant
	for iter(&v) {
		vv := v
		slot := byPrompt[v.PromptID]
		if slot == nil {
			slot = &[2]*schemas.Variant{}
			byPrompt[v.PromptID] = slot
		}
		if v.Variant == schemas.VariantA {
			slot[0] = &vv
		} else {
			slot[1] = &vv
		}
	}
	ids := make([]string, 0, len(byPrompt))
	for id := range byPrompt {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	tally(schemas.StageLabel+"/in", int64(len(ids)))

	var ready []string
	for _, id := range ids {
		slot := byPrompt[id]
		if slot[0] != nil && slot[1] != nil {
			ready = append(ready, id)
			continue
		}
		have := slot[0]
		missing := schemas.VariantB
		if have == nil {
			have, missing = slot[1], schemas.VariantA
		}
		emitDead(deadLetter(schemas.StageLabel, have.PersonaID, id, schemas.ReasonMissingVariant,
			fmt.Sprintf("variant %s failed in the generate stage (see its dead letters)", missing), have))
	}

	results := make([]label.Result, len(ready))
	var before int64
	if f.caller != nil {
		before = f.caller.Stats().Retries.Load()
	}
	err := fanout.Run(ctx, len(ready), max(1, f.Labeler.Limits.Concurrency), func(ctx context.Context, i int) {
		slot := byPrompt[ready[i]]
		res, err := f.labeler.Label(ctx, f.personas[slot[0].PersonaID], *slot[0], *slot[1])
		if err == nil {
			results[i] = res
		}
	})
	if f.caller != nil {
		retries.Inc(ctx, f.caller.Stats().Retries.Load()-before)
	}
	if err != nil {
		return fmt.Errorf("label: %w", err)
	}
	for _, r := range results {
		tally("label/tokens/prompt", r.PromptTokens)
		tally("label/tokens/completion", r.CompletionTokens)
		if r.CacheHit {
			judgeHits.Inc(ctx, 1)
		} else if r.Called {
			judgeCalls.Inc(ctx, 1)
		}
		switch {
		case r.Pair != nil:
			emit(*r.Pair)
		case r.Dead != nil:
			if r.Dead.Reason == schemas.ReasonJudgeFailed {
				judgeFailures.Inc(ctx, 1)
			}
			emitDead(*r.Dead)
		}
	}
	return nil
}

// formatFn renders a preference pair as a ChatML DPO example.
type formatFn struct {
	Style    string
	Personas []schemas.Persona

	personas map[string]schemas.Persona
}

func (f *formatFn) Setup() { f.personas = personaMap(f.Personas) }

func (f *formatFn) ProcessElement(p schemas.PreferencePair, emit func(schemas.DPOExample), emitDead func(schemas.DeadLetter)) {
	ex, err := chatml.Format(p, f.personas[p.PersonaID], f.Style)
	if err != nil {
		emitDead(deadLetter(schemas.StageFormat, p.PersonaID, p.PairID, schemas.ReasonFormatFailed, err.Error(), p))
		return
	}
	emit(ex)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("prepare: settings are not JSON: %v", err))
	}
	return string(b)
}

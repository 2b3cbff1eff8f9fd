package evaluate

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge"
	"github.com/pantrypilot/recipe-dpo/transforms/fanout"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/report"
	"github.com/pantrypilot/recipe-dpo/transforms/variants"
)

var (
	genCalls   = beam.NewCounter("recipe_dpo", "eval_generator_calls")
	genHits    = beam.NewCounter("recipe_dpo", "eval_generator_cache_hits")
	genErrors  = beam.NewCounter("recipe_dpo", "eval_generator_failures")
	judgeErrs  = beam.NewCounter("recipe_dpo", "eval_judge_failures")
	judgedHits = beam.NewCounter("recipe_dpo", "eval_judge_cache_hits")
)

// Outputs is a test case with both models' answers (or why a model failed).
type Outputs struct {
	Case         schemas.TestCase
	SFT, DPO     string
	SFTErr       string
	DPOErr       string
	SFTModel     string
	DPOModel     string
	PromptTokens int64
	OutputTokens int64
}

type caseKeyFn struct{ N int }

func (f *caseKeyFn) ProcessElement(c schemas.TestCase) (int, schemas.TestCase) {
	return fanout.BatchKey(c.ID, f.N), c
}

type pairKeyFn struct{ N int }

func (f *pairKeyFn) ProcessElement(o Outputs) (int, Outputs) {
	return fanout.BatchKey(o.Case.ID, f.N), o
}

// generateFn asks the SFT baseline and the case's persona DPO model for a recipe, with the
// persona-neutral ChatML prompt the trainer saw and the same seed for both.
type generateFn struct {
	Gen       GeneratorConfig
	CacheRoot string
	NoCache   bool

	models *models
}

func (f *generateFn) Setup() error {
	var err error
	f.models, err = newModels(f.Gen, llm.RunCache(f.CacheRoot, f.NoCache))
	return err
}

func (f *generateFn) ProcessElement(ctx context.Context, _ int, iter func(*schemas.TestCase) bool, emit func(Outputs)) error {
	var cases []schemas.TestCase
	var c schemas.TestCase
	for iter(&c) {
		cases = append(cases, c)
	}
	slices.SortFunc(cases, func(a, b schemas.TestCase) int { return strings.Compare(a.ID, b.ID) })
	outs := make([]Outputs, len(cases))
	for i, tc := range cases {
		outs[i].Case = tc
	}
	// Two answers per case, from the SFT baseline (persona "") and the case persona's DPO
	// model: the requests to one model are generated together, model by model.
	type job struct {
		i   int
		dpo bool
	}
	var models []string
	jobs := map[string][]job{}
	for i, tc := range cases {
		for _, m := range []string{"", tc.PersonaID} {
			if _, ok := jobs[m]; !ok {
				models = append(models, m)
			}
			jobs[m] = append(jobs[m], job{i, m != ""})
		}
	}
	for _, persona := range models {
		js := jobs[persona]
		g, name, err := f.models.generator(persona)
		var resps []llm.GenerateResponse
		var errs []error
		if err == nil {
			reqs := make([]llm.GenerateRequest, len(js))
			for k, j := range js {
				tc := cases[j.i]
				reqs[k] = llm.GenerateRequest{
					Model: name, System: chatml.NeutralSystem, User: tc.Request,
					Temperature: f.Gen.Temperature, TopP: f.Gen.TopP, MaxTokens: f.Gen.MaxTokens,
					PresencePenalty: f.Gen.PresencePenalty, FrequencyPenalty: f.Gen.FrequencyPenalty,
					Seed: variants.DeriveSeed(f.Gen.Seed, tc.ID),
				}
			}
			var cerr error
			resps, errs, cerr = llm.GenerateAll(ctx, g, reqs, f.Gen.Limits.Concurrency, f.Gen.DecodeBatch)
			if cerr != nil {
				return fmt.Errorf("evaluate generate: %w", cerr)
			}
		}
		for k, j := range js {
			text, e := "", err
			if e == nil {
				if e = errs[k]; e == nil {
					text = resps[k].Text
					if resps[k].CacheHit {
						genHits.Inc(ctx, 1)
					} else {
						genCalls.Inc(ctx, 1)
					}
				} else {
					e = fmt.Errorf("%s: %s", llm.Classify(e), e)
				}
			}
			o := &outs[j.i]
			if j.dpo {
				o.DPO, o.DPOModel = text, name
				if e != nil {
					o.DPOErr = e.Error()
				}
			} else {
				o.SFT, o.SFTModel = text, name
				if e != nil {
					o.SFTErr = e.Error()
				}
			}
		}
	}
	for _, o := range outs {
		if o.SFTErr != "" || o.DPOErr != "" {
			genErrors.Inc(ctx, 1)
			log.Warnf(ctx, "evaluate: generation failed for %s: sft %q dpo %q", o.Case.ID, o.SFTErr, o.DPOErr)
		}
		emit(o)
	}
	return nil
}

// judgeFn judges each case in both orders. A generation or judging failure becomes an
// EvalResult with Error set: reported, never dropped.
type judgeFn struct {
	Judge     JudgeConfig
	CacheRoot string
	NoCache   bool
	Personas  []schemas.Persona
	RunID     string
	RunDate   string

	judge    evaljudge.Judge
	model    string
	personas map[string]schemas.Persona
}

func (f *judgeFn) Setup(ctx context.Context) error {
	f.personas = map[string]schemas.Persona{}
	for _, p := range f.Personas {
		f.personas[p.ID] = p
	}
	var err error
	f.judge, f.model, err = newJudge(ctx, f.Judge, llm.RunCache(f.CacheRoot, f.NoCache))
	return err
}

func (f *judgeFn) ProcessElement(ctx context.Context, _ int, iter func(*Outputs) bool, emit func(schemas.EvalResult)) error {
	var outs []Outputs
	var o Outputs
	for iter(&o) {
		outs = append(outs, o)
	}
	slices.SortFunc(outs, func(a, b Outputs) int { return strings.Compare(a.Case.ID, b.Case.ID) })
	results := make([]schemas.EvalResult, len(outs))
	err := fanout.Run(ctx, len(outs), max(1, f.Judge.Limits.Concurrency), func(ctx context.Context, i int) {
		results[i] = f.judgeOne(ctx, outs[i])
	})
	if err != nil {
		return fmt.Errorf("evaluate judge: %w", err)
	}
	for _, r := range results {
		// Rows are a function of the run and the (cached) calls, never of the wall clock, so a
		// re-run of a run id writes identical shards and BigQuery sees the same rows: judged_at
		// is the run's date.
		r.RunID, r.RunDate, r.JudgedAt = f.RunID, f.RunDate, f.RunDate+"T00:00:00Z"
		if r.Error != "" {
			judgeErrs.Inc(ctx, 1)
		}
		emit(r)
	}
	return nil
}

func (f *judgeFn) judgeOne(ctx context.Context, o Outputs) schemas.EvalResult {
	tc := o.Case
	base := schemas.EvalResult{CaseID: tc.ID, PersonaID: tc.PersonaID, Category: tc.Category, Request: tc.Request,
		SFTOutput: o.SFT, DPOOutput: o.DPO, JudgeModel: f.model}
	if o.SFTErr != "" || o.DPOErr != "" {
		base.Error = "generate_failed: " + strings.TrimPrefix(strings.Join([]string{o.SFTErr, o.DPOErr}, "; "), "; ")
		return base
	}
	p, ok := f.personas[tc.PersonaID]
	if !ok {
		base.Error = fmt.Sprintf("unknown_persona: %s", tc.PersonaID)
		return base
	}
	out, err := evaljudge.JudgeBothOrders(ctx, f.judge, p, tc, o.SFT, o.DPO)
	if err != nil { // only when ctx ended
		base.Error = "canceled: " + err.Error()
		return base
	}
	if out.CacheHit {
		judgedHits.Inc(ctx, 1)
	}
	return out.Result
}

// reportFn writes the three reports once every result is in (its side input).
type reportFn struct {
	Root       string
	JudgeModel string
}

func (f *reportFn) ProcessElement(ctx context.Context, _ []byte, iter func(*schemas.EvalResult) bool) error {
	var results []schemas.EvalResult
	for {
		var r schemas.EvalResult // fresh per row: rows must not share decoded slices
		if !iter(&r) {
			break
		}
		results = append(results, r)
	}
	s := report.Summarize(results, f.JudgeModel)
	write := func(name string, fn func(io.Writer) error) error {
		w, err := blob.Create(ctx, blob.Join(f.Root, "reports", name))
		if err != nil {
			return err
		}
		if err := fn(w); err != nil {
			w.Abort()
			return fmt.Errorf("report %s: %w", name, err)
		}
		return w.Close()
	}
	if err := write(report.DetailedFile, func(w io.Writer) error { return report.WriteDetailedJSON(w, s, results) }); err != nil {
		return err
	}
	if err := write(report.HTMLFile, func(w io.Writer) error { return report.RenderHTML(w, s, results) }); err != nil {
		return err
	}
	// The summary goes last: its presence means the reports are complete.
	return write(report.SummaryFile, func(w io.Writer) error { return report.WriteSummaryJSON(w, s) })
}

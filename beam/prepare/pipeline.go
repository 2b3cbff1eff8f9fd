// Package prepare is the data-preparation Beam job (PIPELINE.md §3.1–3.3): prompts →
// variants A/B from the SFT generator → preference pairs from a judge with the rules veto →
// ChatML DPO examples, written as Parquet shards under a run root with dead letters and a
// manifest.
//
//	prompts ─validate─► batch ─GBK─► generate (LLM fan-out) ─► batch ─GBK─► label (judge
//	fan-out) ─► format ─► per-persona sinks (GBK) ─► manifest.json
//
// The GroupByKeys after each LLM fan-out checkpoint its results, so a retried downstream
// bundle (Dataflow retries, prism does not) never calls an LLM again; the call cache under
// the run root does the same across runs.
package prepare

import (
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/fanout"
	"github.com/pantrypilot/recipe-dpo/transforms/rowsink"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// DirPrompts is where the job records the prompts it ran on (data/prompts/persona=<id>/).
const DirPrompts = "prompts"

// Output holds the job's main collections, for tests and composition.
type Output struct {
	Prompts     beam.PCollection // schemas.Prompt (valid ones)
	Variants    beam.PCollection // schemas.Variant
	Pairs       beam.PCollection // schemas.PreferencePair
	Examples    beam.PCollection // schemas.DPOExample
	DeadLetters beam.PCollection // schemas.DeadLetter
	Shards      beam.PCollection // schemas.ShardInfo
}

// Pipeline adds the data-preparation job to s. cfg must be valid (Config.Validate).
func Pipeline(s beam.Scope, cfg Config) Output {
	s = s.Scope("Prepare")
	cfg = cfg.withDefaults()
	personaIDs := make([]string, len(cfg.Personas))
	for i, p := range cfg.Personas {
		personaIDs[i] = p.ID
	}
	batches := fanout.Batches(len(cfg.Prompts), cfg.BatchSize)

	// Stage 0: prompts.
	all := beam.CreateList(s, cfg.Prompts)
	prompts, deadPrompts := beam.ParDo2(s.Scope("ValidatePrompts"), &validatePromptFn{Personas: personaIDs}, all)

	// Stage 1: generate variants, in batches so each worker fans calls out concurrently.
	gs := s.Scope("Generate")
	keyed := beam.ParDo(gs, &batchKeyFn[schemas.Prompt]{N: batches}, prompts)
	variants, deadGen := beam.ParDo2(gs, &generateFn{
		Gen: cfg.Generator, CacheRoot: cfg.CacheRoot(), NoCache: cfg.NoCache, Personas: cfg.Personas,
	}, beam.GroupByKey(gs, keyed))

	// Stage 2: label. Batching by prompt id brings a prompt's A and B together.
	ls := s.Scope("Label")
	keyedV := beam.ParDo(ls, &batchKeyFn[schemas.Variant]{N: batches, ByPrompt: true}, variants)
	labelled := beam.ParDoN(ls, &labelFn{
		Labeler: cfg.Labeler, CacheRoot: cfg.CacheRoot(), NoCache: cfg.NoCache, Personas: cfg.Personas,
	}, beam.GroupByKey(ls, keyedV))
	pairs, deadLabel, labelTallies := labelled[0], labelled[1], labelled[2]

	// Stage 3: ChatML DPO examples.
	examples, deadFormat := beam.ParDo2(s.Scope("Format"), &formatFn{Style: cfg.PromptStyle, Personas: cfg.Personas}, pairs)

	dead := beam.Flatten(s, deadPrompts, deadGen, deadLabel, deadFormat)

	// Sinks.
	ws := s.Scope("Write")
	out := func(dir, stage string) rowsink.Spec {
		return rowsink.Spec{Root: cfg.Output, Layout: rowsink.LayoutPersona, StageDir: dir, Stage: stage, Kind: schemas.ShardOut, MaxRows: cfg.ShardRows}
	}
	infos := beam.Flatten(ws,
		rowsink.Write[schemas.Prompt](ws, prompts, out(DirPrompts, schemas.StagePrompts), personaIDs),
		rowsink.Write[schemas.Variant](ws, variants, out(shards.DirVariants, schemas.StageGenerate), personaIDs),
		rowsink.Write[schemas.PreferencePair](ws, pairs, out(shards.DirPreferencePairs, schemas.StageLabel), personaIDs),
		rowsink.Write[schemas.DPOExample](ws, examples, out(shards.DirDPOFormatted, schemas.StageFormat), personaIDs),
		rowsink.Write[schemas.DeadLetter](ws, dead, rowsink.Spec{Root: cfg.Output, Layout: rowsink.LayoutDeadLetters,
			StageDir: shards.DirDeadLetters, Kind: schemas.ShardDead, MaxRows: cfg.ShardRows}, Stages),
	)

	// Accounting: every stage's input count, dead-letter reasons and label/usage statistics,
	// all computed from rows so that a cached re-run reports the same numbers.
	ts := s.Scope("Tally")
	tallies := stats.SumPerKey(ts, beam.Flatten(ts,
		beam.ParDo(ts, &tallyFn[schemas.Prompt]{Key: schemas.StagePrompts + "/in", N: 1}, all),
		beam.ParDo(ts, &tallyFn[schemas.Prompt]{Key: schemas.StageGenerate + "/in", N: 2}, prompts),
		beam.ParDo(ts, &tallyFn[schemas.PreferencePair]{Key: schemas.StageFormat + "/in", N: 1}, pairs),
		beam.ParDo(ts, tallyDead, dead),
		beam.ParDo(ts, tallyVariant, variants),
		beam.ParDo(ts, tallyPair, pairs),
		labelTallies,
	))
	beam.ParDo0(s.Scope("Manifest"), &manifestFn{
		Root: cfg.Output, CodeVersion: cfg.CodeVersion, Settings: mustJSON(cfg.Settings), Inputs: cfg.Inputs,
		GeneratorModel: cfg.Generator.Spec.Model, JudgeModel: judgeModel(cfg.Labeler),
	}, beam.Impulse(s), beam.SideInput{Input: infos}, beam.SideInput{Input: tallies})

	return Output{Prompts: prompts, Variants: variants, Pairs: pairs, Examples: examples, DeadLetters: dead, Shards: infos}
}

func judgeModel(l LabelerConfig) string {
	if l.Kind == LabelerRules {
		return "rules"
	}
	return l.Model
}

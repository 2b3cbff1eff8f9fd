// Package evaluate is the evaluation Beam job (PIPELINE.md §5): for each test case, the SFT
// baseline and the persona's DPO model answer the same persona-neutral prompt; a judge
// (Gemini, or the dietary-rules judge) compares them in both orders and a win counts only
// when both orders agree; results go to Parquet, reports/detailed_results.json,
// reports/summary_stats.json and reports/evaluation_report.html.
//
//	cases ─batch─GBK─► generate SFT + DPO ─batch─GBK─► judge both orders ─► results shards
//	                                                                     └─► reports (one worker)
package evaluate

import (
	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge"
	"github.com/pantrypilot/recipe-dpo/transforms/fanout"
	"github.com/pantrypilot/recipe-dpo/transforms/rowsink"
)

// DirResults is where result rows go under the run root (reports/results/persona=<id>/).
const DirResults = "reports/results"

// Output holds the job's collections, for tests and composition.
type Output struct {
	Results beam.PCollection // schemas.EvalResult, error rows included
	Shards  beam.PCollection // schemas.ShardInfo
}

// Pipeline adds the evaluation job to s. cfg must be valid (Config.Validate).
func Pipeline(s beam.Scope, cfg Config) Output {
	s = s.Scope("Evaluate")
	personaIDs := schemas.PersonaIDs(cfg.Personas)
	batches := fanout.Batches(len(cfg.Cases), cfg.BatchSize)

	cases := beam.CreateList(s, cfg.Cases)
	gs := s.Scope("Generate")
	outputs := beam.ParDo(gs, &generateFn{Gen: cfg.Generator, CacheRoot: cfg.CacheRoot(), NoCache: cfg.NoCache},
		beam.GroupByKey(gs, beam.ParDo(gs, &caseKeyFn{N: batches}, cases)))

	js := s.Scope("Judge")
	results := beam.ParDo(js, &judgeFn{Judge: cfg.Judge, CacheRoot: cfg.CacheRoot(), NoCache: cfg.NoCache,
		Personas: cfg.Personas, RunID: cfg.RunID, RunDate: cfg.RunDate},
		beam.GroupByKey(js, beam.ParDo(js, &pairKeyFn{N: batches}, outputs)))

	infos := rowsink.Write[schemas.EvalResult](s, results, rowsink.Spec{Root: cfg.Output, Layout: rowsink.LayoutPlain,
		StageDir: DirResults, Stage: "evaluate", Kind: schemas.ShardOut}, personaIDs)
	beam.ParDo0(s.Scope("Reports"), &reportFn{Root: cfg.Output, JudgeModel: judgeName(cfg.Judge)},
		beam.Impulse(s), beam.SideInput{Input: results})
	if cfg.BigQuery.Enabled() {
		WriteBigQuery(s, cfg.BigQuery, results)
	}
	return Output{Results: results, Shards: infos}
}

func judgeName(j JudgeConfig) string {
	if j.Kind == JudgeRules {
		return JudgeRules
	}
	if j.Model == "" {
		return evaljudge.DefaultGeminiModel
	}
	return j.Model
}

package bqload

import (
	"strings"

	"cloud.google.com/go/bigquery"
)

// TablePlaceholder stands for the table in the Query* constants; Render replaces it.
const TablePlaceholder = "${TABLE}"

// The analyst queries of the README, in GoogleSQL. They count rows as report.Summarize
// does (transforms/report), so their numbers match reports/summary_stats.json:
//   - a row is judged when it has no error and its winner is dpo, sft or tie; error rows
//     are counted apart and never as wins, losses or ties;
//   - win_rate = DPO wins / judged rows (ties in the denominator);
//   - a model's violation rate = judged rows whose output parsed and broke ≥1 dietary
//     rule / judged rows whose output parsed; violation_reduction = 1 − dpo / sft.
//
// Rates are NULL when their denominator is 0 (SAFE_DIVIDE).
const (
	// QueryWinRateByPersonaCategory: one run's outcome per persona and test-case category.
	// Parameter: @run_id STRING.
	QueryWinRateByPersonaCategory = `SELECT
  persona_id,
  category,
  COUNTIF(judged) AS n,
  COUNTIF(judged AND winner = 'dpo') AS wins,
  COUNTIF(judged AND winner = 'sft') AS losses,
  COUNTIF(judged AND winner = 'tie') AS ties,
  COUNTIF(NOT judged) AS errors,
  SAFE_DIVIDE(COUNTIF(judged AND winner = 'dpo'), COUNTIF(judged)) AS win_rate
FROM (
  SELECT
    persona_id,
    category,
    winner,
    IFNULL(error, '') = '' AND IFNULL(winner, '') IN ('dpo', 'sft', 'tie') AS judged
  FROM ${TABLE}
  WHERE run_id = @run_id
)
GROUP BY persona_id, category
ORDER BY persona_id, category`

	// QueryViolationRates: one run's forbidden-ingredient violation rates, SFT vs DPO,
	// per persona. Parameter: @run_id STRING.
	QueryViolationRates = `SELECT
  persona_id,
  COUNTIF(judged) AS n,
  COUNTIF(judged AND sft_parsed_ok) AS sft_parsed,
  COUNTIF(judged AND sft_parsed_ok AND sft_violates) AS sft_violating,
  COUNTIF(judged AND dpo_parsed_ok) AS dpo_parsed,
  COUNTIF(judged AND dpo_parsed_ok AND dpo_violates) AS dpo_violating,
  SAFE_DIVIDE(COUNTIF(judged AND sft_parsed_ok AND sft_violates), COUNTIF(judged AND sft_parsed_ok)) AS sft_violation_rate,
  SAFE_DIVIDE(COUNTIF(judged AND dpo_parsed_ok AND dpo_violates), COUNTIF(judged AND dpo_parsed_ok)) AS dpo_violation_rate,
  1 - SAFE_DIVIDE(
    SAFE_DIVIDE(COUNTIF(judged AND dpo_parsed_ok AND dpo_violates), COUNTIF(judged AND dpo_parsed_ok)),
    SAFE_DIVIDE(COUNTIF(judged AND sft_parsed_ok AND sft_violates), COUNTIF(judged AND sft_parsed_ok))
  ) AS violation_reduction
FROM (
  SELECT
    persona_id,
    IFNULL(error, '') = '' AND IFNULL(winner, '') IN ('dpo', 'sft', 'tie') AS judged,
    IFNULL(sft_parsed_ok, FALSE) AS sft_parsed_ok,
    IFNULL(dpo_parsed_ok, FALSE) AS dpo_parsed_ok,
    IFNULL(ARRAY_LENGTH(sft_violations), 0) > 0 AS sft_violates,
    IFNULL(ARRAY_LENGTH(dpo_violations), 0) > 0 AS dpo_violates
  FROM ${TABLE}
  WHERE run_id = @run_id
)
GROUP BY persona_id
ORDER BY persona_id`

	// QueryTrend: win rate, violation rates and mean overall-suitability scores per run,
	// oldest first, for the runs dated on or after @since (DATE; prunes partitions).
	QueryTrend = `SELECT
  run_date,
  run_id,
  COUNTIF(judged) AS n,
  COUNTIF(judged AND winner = 'dpo') AS wins,
  SAFE_DIVIDE(COUNTIF(judged AND winner = 'dpo'), COUNTIF(judged)) AS win_rate,
  SAFE_DIVIDE(COUNTIF(judged AND sft_parsed_ok AND sft_violates), COUNTIF(judged AND sft_parsed_ok)) AS sft_violation_rate,
  SAFE_DIVIDE(COUNTIF(judged AND dpo_parsed_ok AND dpo_violates), COUNTIF(judged AND dpo_parsed_ok)) AS dpo_violation_rate,
  AVG(IF(judged, sft_overall, NULL)) AS sft_mean_overall,
  AVG(IF(judged, dpo_overall, NULL)) AS dpo_mean_overall
FROM (
  SELECT
    run_date,
    run_id,
    winner,
    IFNULL(error, '') = '' AND IFNULL(winner, '') IN ('dpo', 'sft', 'tie') AS judged,
    IFNULL(sft_parsed_ok, FALSE) AS sft_parsed_ok,
    IFNULL(dpo_parsed_ok, FALSE) AS dpo_parsed_ok,
    IFNULL(ARRAY_LENGTH(sft_violations), 0) > 0 AS sft_violates,
    IFNULL(ARRAY_LENGTH(dpo_violations), 0) > 0 AS dpo_violates,
    sft_scores.overall_suitability AS sft_overall,
    dpo_scores.overall_suitability AS dpo_overall
  FROM ${TABLE}
  WHERE run_date >= @since
)
GROUP BY run_date, run_id
ORDER BY run_date, run_id`
)

// Render substitutes the table's quoted name for TablePlaceholder in one of the Query*
// constants.
func Render(query string, t *bigquery.Table) string {
	return strings.ReplaceAll(query, TablePlaceholder, tableRef(t))
}

package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// File names of the three reports inside the reports directory (PIPELINE.md §5.4).
const (
	SummaryFile  = "summary_stats.json"
	DetailedFile = "detailed_results.json"
	HTMLFile     = "evaluation_report.html"
)

// Detailed is reports/detailed_results.json: every row of the run, error rows included, with
// both outputs, both models' scores, the verdict and the rules violations.
type Detailed struct {
	// SchemaVersion, RunID, JudgeModel and GeneratedAt are the Summary's.
	SchemaVersion int    `json:"schema_version"`
	RunID         string `json:"run_id"`
	JudgeModel    string `json:"judge_model"`
	GeneratedAt   string `json:"generated_at"`
	// Cases is the number of rows, judged or not; Errors those not judged (Block.Errors).
	Cases  int `json:"cases"`
	Errors int `json:"errors"`
	// Results are the rows sorted by persona, category and case id. Violation lists are
	// never null.
	Results []schemas.EvalResult `json:"results"`
}

// NewDetailed builds the detailed report of results under s's run metadata.
func NewDetailed(s Summary, results []schemas.EvalResult) Detailed {
	rows := sortedRows(results)
	errs := 0
	for i := range rows {
		if !judged(rows[i]) {
			errs++
		}
		if rows[i].SFTViolations == nil {
			rows[i].SFTViolations = []string{}
		}
		if rows[i].DPOViolations == nil {
			rows[i].DPOViolations = []string{}
		}
	}
	return Detailed{
		SchemaVersion: s.SchemaVersion, RunID: s.RunID, JudgeModel: s.JudgeModel, GeneratedAt: s.GeneratedAt,
		Cases: len(rows), Errors: errs, Results: rows,
	}
}

// sortedRows is a copy of results in report order: persona, category, case id.
func sortedRows(results []schemas.EvalResult) []schemas.EvalResult {
	rows := slices.Clone(results)
	slices.SortStableFunc(rows, func(a, b schemas.EvalResult) int {
		return cmp.Or(cmp.Compare(a.PersonaID, b.PersonaID), categoryOrder(a.Category, b.Category), cmp.Compare(a.CaseID, b.CaseID))
	})
	return rows
}

// WriteSummaryJSON writes s as indented JSON (summary_stats.json).
func WriteSummaryJSON(w io.Writer, s Summary) error { return writeJSON(w, s) }

// WriteDetailedJSON writes NewDetailed(s, results) as indented JSON (detailed_results.json).
func WriteDetailedJSON(w io.Writer, s Summary, results []schemas.EvalResult) error {
	return writeJSON(w, NewDetailed(s, results))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("report: write json: %w", err)
	}
	return nil
}

// WriteFile writes a local file through write, into a temporary file in the same directory
// renamed over path on success, so a reader never sees a half-written report. Missing
// directories are created. A GCS destination instead passes a blob.Writer to write.
func WriteFile(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// WriteDir writes the three reports (SummaryFile, DetailedFile, HTMLFile) into the local
// directory dir.
func WriteDir(dir string, s Summary, results []schemas.EvalResult) error {
	for name, write := range map[string]func(io.Writer) error{
		SummaryFile:  func(w io.Writer) error { return WriteSummaryJSON(w, s) },
		DetailedFile: func(w io.Writer) error { return WriteDetailedJSON(w, s, results) },
		HTMLFile:     func(w io.Writer) error { return RenderHTML(w, s, results) },
	} {
		if err := WriteFile(filepath.Join(dir, name), write); err != nil {
			return err
		}
	}
	return nil
}

package report

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// hostile is a row whose untrusted fields each try to break out of their HTML context: the
// model output and a violation out of <pre>/<li>, the reasoning out of an attribute, the
// persona id out of data-*, <option> and SVG <text>.
func hostile() schemas.EvalResult {
	r := judgedRow("evil", `p"><svg onload=alert(3)>`, schemas.CategoryEdgeCase, "dpo", "high", true, 5, 6,
		[]string{"</li></ul><script>alert(2)</script>"}, nil, true, true)
	r.DPOOutput = "<script>alert(1)</script>"
	r.SFTOutput = "</pre><img src=x onerror=alert(4)>"
	r.Reasoning = `" onmouseover="alert(5)`
	r.Request = "<b>bold</b> & <i>tofu</i>"
	return r
}

func render(t *testing.T, rows []schemas.EvalResult) string {
	t.Helper()
	var buf bytes.Buffer
	if err := RenderHTML(&buf, Summarize(rows, "gemini-2.0-flash"), rows); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestRenderHTMLEscapesUntrustedText(t *testing.T) {
	page := render(t, append(fixture(), hostile()))
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"&lt;/pre&gt;&lt;img src=x onerror=alert(4)&gt;",
		"&lt;/li&gt;&lt;/ul&gt;&lt;script&gt;alert(2)&lt;/script&gt;",
		"&#34; onmouseover=&#34;alert(5)",
		"&lt;b&gt;bold&lt;/b&gt; &amp; &lt;i&gt;tofu&lt;/i&gt;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page: want escaped %q", want)
		}
	}
	for _, bad := range []string{"<script>alert", "<img src=x", "<svg onload", `" onmouseover="`, "<b>bold"} {
		if strings.Contains(page, bad) {
			t.Errorf("page: got unescaped %q", bad)
		}
	}
	if got := strings.Count(page, "<script"); got != 1 {
		t.Errorf("<script elements: got %d, want 1 (the report's own)", got)
	}
}

// TestRenderHTMLSelfContained checks the page fetches nothing: the only URL is the SVG
// namespace, which names rather than loads.
func TestRenderHTMLSelfContained(t *testing.T) {
	page := render(t, sampleRun(60))
	for _, bad := range []string{" src=", "<link", "@import", "url(", "@font-face"} {
		if strings.Contains(page, bad) {
			t.Errorf("page: got %q, want no external resource", bad)
		}
	}
	for _, u := range regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+[^"'\s<]*`).FindAllString(page, -1) {
		if u != "http://www.w3.org/2000/svg" {
			t.Errorf("page: got URL %q, want none but the SVG namespace", u)
		}
	}
}

func TestRenderHTMLStructure(t *testing.T) {
	rows := append(fixture(), hostile())
	page := render(t, rows)
	tests := []struct {
		what string
		re   string
		want int
	}{
		{"charts", `<svg id="chart-[a-z-]+" class="chart-svg"`, 4},
		{"case bodies", `<tbody class="case"`, len(rows)},
		{"error rows", `data-outcome="error"`, 2},
		{"DPO-win rows", `data-outcome="dpo"`, 4},
		// Win chart per persona: p1 (win, tie), p2 (win, loss), the hostile persona (win);
		// per category: basic (win, loss), constraint (win, tie), edge (win; errors only
		// apart from the hostile row).
		{"win bars", `<rect [^>]*class="bar win"`, 6},
		{"violation bars", `<rect [^>]*class="bar (sft|dpo)"`, 2 * 4}, // overall + 3 personas
		{"score boxes", `<rect [^>]*class="box (sft|dpo)"`, 10},
		{"filter selects", `<select id="f-(persona|category|outcome)" data-filter=`, 3},
	}
	for _, tt := range tests {
		if got := len(regexp.MustCompile(tt.re).FindAllString(page, -1)); got != tt.want {
			t.Errorf("%s (%s): got %d, want %d", tt.what, tt.re, got, tt.want)
		}
	}
}

// sampleRun is a deterministic, plausible run of n cases over three personas: DPO mostly
// wins, violates less, and a few cases failed judging.
func sampleRun(n int) []schemas.EvalResult {
	rng := rand.New(rand.NewPCG(1, 2))
	personas := []string{"persona_a_korean_spicy", "persona_b_indian_veg", "persona_f_mexican_budget"}
	cats := []string{
		schemas.CategoryBasicAlignment, schemas.CategoryBasicAlignment, schemas.CategoryBasicAlignment, schemas.CategoryBasicAlignment,
		schemas.CategoryConstraintStress, schemas.CategoryConstraintStress, schemas.CategoryConstraintStress,
		schemas.CategoryEdgeCase, schemas.CategoryEdgeCase, schemas.CategoryCrossPersona,
	}
	clamp := func(v float64) float64 { return max(0, min(10, float64(int(v*2))/2)) }
	sc := func(m float64) schemas.EvalScores {
		return schemas.EvalScores{PersonaAlignment: clamp(m + rng.NormFloat64()), ConstraintCompliance: clamp(m + 1 + rng.NormFloat64()),
			PreferredIngredients: clamp(m - 1 + rng.NormFloat64()), RecipeQuality: clamp(m + rng.NormFloat64()), OverallSuitability: clamp(m + rng.NormFloat64())}
	}
	var rows []schemas.EvalResult
	for i := range n {
		p := personas[i%len(personas)]
		id := fmt.Sprintf("%s_%03d", p[:9], i)
		cat := cats[(i/len(personas))%len(cats)]
		if i%23 == 7 {
			rows = append(rows, errorRow(id, p, cat, 400))
			continue
		}
		edge := 0.25 * float64(i%len(personas)) // the third persona gains least
		winner, conf := schemas.WinnerDPO, schemas.ConfidenceHigh
		switch u := rng.Float64(); {
		case u < 0.15+edge:
			winner, conf = schemas.WinnerSFT, schemas.ConfidenceMedium
		case u < 0.3+edge:
			winner, conf = schemas.WinnerTie, schemas.ConfidenceLow
		case u < 0.45:
			conf = schemas.ConfidenceMedium
		}
		var sv, dv []string
		if cat == schemas.CategoryConstraintStress && rng.Float64() < 0.6 {
			sv = []string{"forbidden: pork (in \"pork belly\")"}
		}
		if cat == schemas.CategoryConstraintStress && rng.Float64() < 0.2 {
			dv = []string{"restriction vegetarian: fish sauce"}
		}
		dm := 7.0
		if winner != schemas.WinnerDPO {
			dm = 5
		}
		sp, dp := rng.Float64() > 0.05, rng.Float64() > 0.03
		if !sp {
			sv = nil
		}
		if !dp {
			dv = nil
		}
		r := judgedRow(id, p, cat, winner, conf, winner != schemas.WinnerTie, 5.5, dm, sv, dv, sp, dp)
		r.SFTScores, r.DPOScores = sc(5.5), sc(dm)
		r.SFTOutput = fmt.Sprintf("{\"title\": \"SFT dish %d\",\n \"ingredients\": [\"tofu\", \"rice\"],\n \"steps\": [\"Cook.\"]}", i)
		r.DPOOutput = fmt.Sprintf("{\"title\": \"DPO dish %d\",\n \"ingredients\": [\"tofu\", \"gochujang\"],\n \"steps\": [\"Cook well.\"]}", i)
		r.PromptTokens, r.CompletionTokens = 900+int64(rng.IntN(200)), 150+int64(rng.IntN(50))
		rows = append(rows, r)
	}
	return rows
}

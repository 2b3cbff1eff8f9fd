package report

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// The charts are computed here as plain geometry (rectangles, lines, texts, circles in SVG
// user units) and drawn by the "chart" template, so every label goes through html/template's
// escaping like the rest of the page and no SVG is assembled from strings.

// chart is one inline SVG figure.
type chart struct {
	ID, Title string
	W, H      float64
	Lines     []svgLine
	Rects     []svgRect
	Circles   []svgCircle
	Texts     []svgText
}

type svgLine struct {
	X1, Y1, X2, Y2 float64
	Class          string
}

// svgRect is a bar or box; Tip is its hover tooltip (an SVG <title>).
type svgRect struct {
	X, Y, W, H float64
	Class, Tip string
}

type svgCircle struct {
	CX, CY, R  float64
	Class, Tip string
}

// svgText is a label; Anchor is an SVG text-anchor (start, middle, end).
type svgText struct {
	X, Y          float64
	Anchor, Class string
	S, Tip        string
}

// namedBlock is a Block with its persona or category name.
type namedBlock struct {
	Name string
	B    Block
}

const (
	labelW    = 200.0 // left column of group names in the horizontal charts
	maxLabel  = 30    // characters of a group name shown before "…"
	barAreaW  = 520.0
	valueW    = 170.0 // right column of values
	rowH      = 22.0
	rowGap    = 8.0
	legendTop = 16.0
)

func truncate(s string) string {
	if r := []rune(s); len(r) > maxLabel {
		return string(r[:maxLabel-1]) + "…"
	}
	return s
}

// legend appends a row of coloured swatches with their names at y.
func (c *chart) legend(x, y float64, entries ...[2]string) {
	for _, e := range entries {
		c.Rects = append(c.Rects, svgRect{X: x, Y: y - 10, W: 12, H: 12, Class: "swatch " + e[0]})
		c.Texts = append(c.Texts, svgText{X: x + 16, Y: y, Anchor: "start", Class: "legend", S: e[1]})
		x += 24 + 7*float64(len(e[1]))
	}
}

// xAxis draws vertical grid lines with percentage labels over a horizontal bar area.
func (c *chart) xAxis(top, bottom, max float64, ticks int) {
	for i := 0; i <= ticks; i++ {
		v := max * float64(i) / float64(ticks)
		x := labelW + barAreaW*v/max
		c.Lines = append(c.Lines, svgLine{X1: x, Y1: top - 4, X2: x, Y2: bottom, Class: "grid"})
		c.Texts = append(c.Texts, svgText{X: x, Y: top - 8, Anchor: "middle", Class: "tick", S: fmtPct(v)})
	}
}

func fmtPct(v float64) string {
	if s := fmt.Sprintf("%.0f%%", 100*v); math.Abs(100*v-math.Round(100*v)) < 1e-9 {
		return s
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// outcomeChart draws one stacked 100% bar per group: DPO wins, ties, SFT wins, with the
// win rate and n at the right.
func outcomeChart(id, title string, groups []namedBlock) chart {
	top := legendTop + 30
	c := chart{ID: id, Title: title, W: labelW + barAreaW + valueW}
	c.H = top + float64(len(groups))*(rowH+rowGap) + 4
	c.legend(labelW, legendTop, [2]string{"bar win", "DPO win"}, [2]string{"bar tie", "tie"}, [2]string{"bar loss", "SFT win"})
	c.xAxis(top, c.H-4, 1, 4)
	c.Texts = append(c.Texts, svgText{X: labelW + barAreaW + 8, Y: legendTop, Anchor: "start", Class: "tick", S: "DPO win rate (wins/n)"})
	for i, g := range groups {
		y := top + float64(i)*(rowH+rowGap) + rowGap/2
		c.Texts = append(c.Texts, svgText{X: labelW - 8, Y: y + rowH/2 + 4, Anchor: "end", Class: "label", S: truncate(g.Name), Tip: g.Name})
		b := g.B
		if b.N == 0 {
			c.Texts = append(c.Texts, svgText{X: labelW + 6, Y: y + rowH/2 + 4, Anchor: "start", Class: "na",
				S: fmt.Sprintf("no judged cases (%d errors)", b.Errors)})
			continue
		}
		x := labelW
		for _, part := range []struct {
			k     int
			class string
			what  string
		}{{b.Wins, "bar win", "DPO wins"}, {b.Ties, "bar tie", "ties"}, {b.Losses, "bar loss", "SFT wins"}} {
			if part.k == 0 {
				continue
			}
			w := barAreaW * float64(part.k) / float64(b.N)
			c.Rects = append(c.Rects, svgRect{X: x, Y: y, W: w, H: rowH, Class: part.class,
				Tip: fmt.Sprintf("%s: %d %s of %d (%s)", g.Name, part.k, part.what, b.N, pct(ratio(part.k, b.N)))})
			x += w
		}
		v := fmt.Sprintf("%s (%d/%d)", pct(b.WinRate), b.Wins, b.N)
		if b.Errors > 0 {
			v += fmt.Sprintf(" · %d err", b.Errors)
		}
		c.Texts = append(c.Texts, svgText{X: labelW + barAreaW + 8, Y: y + rowH/2 + 4, Anchor: "start", Class: "value", S: v})
	}
	return c
}

// violationChart draws, per group, the SFT and DPO violation rates as two horizontal bars on
// a common scale.
func violationChart(id, title string, groups []namedBlock) chart {
	const barH, pairGap = 11.0, 2.0
	groupH := 2*barH + pairGap + 12
	top := legendTop + 30
	c := chart{ID: id, Title: title, W: labelW + barAreaW + valueW}
	c.H = top + float64(len(groups))*groupH + 4
	c.legend(labelW, legendTop, [2]string{"bar sft", "SFT"}, [2]string{"bar dpo", "DPO"})
	hi := 0.0
	for _, g := range groups {
		for _, r := range []*float64{g.B.ViolationRate.SFT, g.B.ViolationRate.DPO} {
			if r != nil {
				hi = math.Max(hi, *r)
			}
		}
	}
	scale := 1.0 // the smallest of these that holds every bar, so low rates stay visible
	for _, m := range []float64{0.2, 0.4, 0.6, 0.8, 1} {
		if hi <= m {
			scale = m
			break
		}
	}
	c.xAxis(top, c.H-4, scale, 4)
	c.Texts = append(c.Texts, svgText{X: labelW + barAreaW + 8, Y: legendTop, Anchor: "start", Class: "tick", S: "rate (violating/parsed)"})
	for i, g := range groups {
		y := top + float64(i)*groupH + 6
		c.Texts = append(c.Texts, svgText{X: labelW - 8, Y: y + barH + 5, Anchor: "end", Class: "label", S: truncate(g.Name), Tip: g.Name})
		for j, m := range []struct {
			name, class string
			rate        *float64
			k, parsed   int
		}{
			{"SFT", "bar sft", g.B.ViolationRate.SFT, g.B.Violating.SFT, g.B.Parsed.SFT},
			{"DPO", "bar dpo", g.B.ViolationRate.DPO, g.B.Violating.DPO, g.B.Parsed.DPO},
		} {
			by := y + float64(j)*(barH+pairGap)
			v := "n/a"
			if m.rate != nil {
				v = fmt.Sprintf("%s (%d/%d)", pct(m.rate), m.k, m.parsed)
				w := barAreaW * *m.rate / scale
				c.Rects = append(c.Rects, svgRect{X: labelW, Y: by, W: w, H: barH, Class: m.class,
					Tip: fmt.Sprintf("%s %s: %d of %d parsed outputs break a rule (%s)", g.Name, m.name, m.k, m.parsed, pct(m.rate))})
			}
			c.Texts = append(c.Texts, svgText{X: labelW + barAreaW + 8, Y: by + barH - 1, Anchor: "start", Class: "value small", S: m.name + " " + v})
		}
	}
	return c
}

// criteria are the five judge criteria in report order, with a reader's name.
var criteria = []struct {
	Name  string
	Score func(schemas.EvalScores) float64
}{
	{"Persona alignment", func(s schemas.EvalScores) float64 { return s.PersonaAlignment }},
	{"Constraint compliance", func(s schemas.EvalScores) float64 { return s.ConstraintCompliance }},
	{"Preferred ingredients", func(s schemas.EvalScores) float64 { return s.PreferredIngredients }},
	{"Recipe quality", func(s schemas.EvalScores) float64 { return s.RecipeQuality }},
	{"Overall suitability", func(s schemas.EvalScores) float64 { return s.OverallSuitability }},
}

// fiveNum is a box plot's summary of a sample.
type fiveNum struct {
	N                        int
	Min, Q1, Median, Q3, Max float64
	Mean                     float64
}

// summarize computes the five-number summary with linearly interpolated quantiles (R's
// type 7, numpy's default); ok is false for an empty sample.
func summarize(xs []float64) (f fiveNum, ok bool) {
	if len(xs) == 0 {
		return f, false
	}
	s := slices.Sorted(slices.Values(xs))
	q := func(p float64) float64 {
		h := p * float64(len(s)-1)
		lo := math.Floor(h)
		if int(lo)+1 >= len(s) {
			return s[len(s)-1]
		}
		return s[int(lo)] + (h-lo)*(s[int(lo)+1]-s[int(lo)])
	}
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return fiveNum{N: len(s), Min: s[0], Q1: q(0.25), Median: q(0.5), Q3: q(0.75), Max: s[len(s)-1], Mean: sum / float64(len(s))}, true
}

// scoreChart draws, per criterion, an SFT and a DPO box plot of the judged rows' 0–10
// scores: whiskers at min and max, the box from the first to the third quartile, a line at
// the median, a dot at the mean (whose value is printed above).
func scoreChart(id, title string, results []schemas.EvalResult) chart {
	const (
		left, right, top, bottom = 40.0, 10.0, 48.0, 44.0
		plotH                    = 220.0
		boxW                     = 24.0
	)
	c := chart{ID: id, Title: title, W: labelW + barAreaW + valueW, H: top + plotH + bottom}
	c.legend(left, legendTop, [2]string{"box sft", "SFT"}, [2]string{"box dpo", "DPO"})
	c.Texts = append(c.Texts, svgText{X: left + 120, Y: legendTop, Anchor: "start", Class: "legend",
		S: "box: quartiles · line: median · dot: mean · whiskers: min–max"})
	y := func(v float64) float64 { return top + (1-v/10)*plotH }
	for v := 0.0; v <= 10; v += 2 {
		c.Lines = append(c.Lines, svgLine{X1: left, Y1: y(v), X2: c.W - right, Y2: y(v), Class: "grid"})
		c.Texts = append(c.Texts, svgText{X: left - 6, Y: y(v) + 4, Anchor: "end", Class: "tick", S: fmt.Sprintf("%.0f", v)})
	}
	var sft, dpo [5][]float64
	for _, r := range results {
		if !judged(r) {
			continue
		}
		for k, cr := range criteria {
			sft[k] = append(sft[k], cr.Score(r.SFTScores))
			dpo[k] = append(dpo[k], cr.Score(r.DPOScores))
		}
	}
	gw := (c.W - left - right) / float64(len(criteria))
	for k, cr := range criteria {
		cx := left + gw*(float64(k)+0.5)
		for i, word := range strings.SplitN(cr.Name, " ", 2) {
			c.Texts = append(c.Texts, svgText{X: cx, Y: top + plotH + 18 + 14*float64(i), Anchor: "middle", Class: "label", S: word})
		}
		for j, m := range []struct {
			name, class string
			xs          []float64
			dx          float64
		}{{"SFT", "box sft", sft[k], -boxW/2 - 4}, {"DPO", "box dpo", dpo[k], boxW/2 + 4}} {
			f, ok := summarize(m.xs)
			if !ok {
				if j == 0 {
					c.Texts = append(c.Texts, svgText{X: cx, Y: y(5), Anchor: "middle", Class: "na", S: "no data"})
				}
				continue
			}
			x := cx + m.dx
			tip := fmt.Sprintf("%s %s: mean %.2f, median %.2f, quartiles %.2f–%.2f, min %.2f, max %.2f (n=%d)",
				m.name, strings.ToLower(cr.Name), f.Mean, f.Median, f.Q1, f.Q3, f.Min, f.Max, f.N)
			c.Lines = append(c.Lines,
				svgLine{X1: x, Y1: y(f.Max), X2: x, Y2: y(f.Min), Class: "whisker"},
				svgLine{X1: x - boxW/4, Y1: y(f.Max), X2: x + boxW/4, Y2: y(f.Max), Class: "whisker"},
				svgLine{X1: x - boxW/4, Y1: y(f.Min), X2: x + boxW/4, Y2: y(f.Min), Class: "whisker"})
			h := math.Max(y(f.Q1)-y(f.Q3), 1.5) // a zero-height box stays visible
			c.Rects = append(c.Rects, svgRect{X: x - boxW/2, Y: y(f.Q3), W: boxW, H: h, Class: m.class, Tip: tip})
			c.Lines = append(c.Lines, svgLine{X1: x - boxW/2, Y1: y(f.Median), X2: x + boxW/2, Y2: y(f.Median), Class: "median"})
			c.Circles = append(c.Circles, svgCircle{CX: x, CY: y(f.Mean), R: 3, Class: "mean", Tip: tip})
			c.Texts = append(c.Texts, svgText{X: x, Y: y(f.Max) - 6, Anchor: "middle", Class: "value small", S: fmt.Sprintf("%.1f", f.Mean)})
		}
	}
	return c
}

package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/pantrypilot/recipe-dpo/transforms/report"
)

// printSummary prints the per-persona table the demo and analysts look at first.
func printSummary(w io.Writer, s report.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "persona\tn\terrors\tDPO wins\tties\tSFT wins\twin rate\tviolations SFT\tviolations DPO\tparse SFT\tparse DPO\t")
	row := func(name string, b report.Block) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, b.N, b.Errors, b.Wins, b.Ties, b.Losses,
			pct(b.WinRate), pct(b.ViolationRate.SFT), pct(b.ViolationRate.DPO), pct(b.ParseRate.SFT), pct(b.ParseRate.DPO))
	}
	var ids []string
	for id := range s.PerPersona {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		row(id, s.PerPersona[id])
	}
	row("overall", s.Overall)
	tw.Flush()
	fmt.Fprintf(w, "\njudge %s, violation reduction %s\n", s.JudgeModel, pct(s.Overall.ViolationReduction))
}

func pct(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100**v)
}

package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/pantrypilot/recipe-dpo/trainer/data"
)

// Metrics is one line of metrics.jsonl: means over the optimizer steps since the previous line,
// each step's value being the pair-weighted (dpo) or token-weighted (sft) mean of its
// micro-batches. Names are TRL's.
type Metrics struct {
	Step  int     `json:"step"`  // optimizer steps completed
	Epoch float64 `json:"epoch"` // fractional epochs completed
	Loss  float64 `json:"loss"`
	// DPO only.
	RewardsChosen   *float64 `json:"rewards/chosen,omitempty"`
	RewardsRejected *float64 `json:"rewards/rejected,omitempty"`
	RewardsAccuracy *float64 `json:"rewards/accuracies,omitempty"`
	RewardsMargins  *float64 `json:"rewards/margins,omitempty"`
	LogpsChosen     *float64 `json:"logps/chosen,omitempty"`
	LogpsRejected   *float64 `json:"logps/rejected,omitempty"`
	NLLLoss         float64  `json:"nll_loss"`  // mean NLL per chosen completion token
	GradNorm        float64  `json:"grad_norm"` // global L2 norm before clipping
	LR              float64  `json:"lr"`        // learning rate of the last step of the window
	TokensPerSec    float64  `json:"tokens/s"`  // real (non-padding) tokens through the policy per second
	PaddingFraction float64  `json:"padding"`   // share of padding tokens in the window's batches
	ElapsedSeconds  float64  `json:"elapsed_s"` // wall time since this process started training
}

// window accumulates steps between two metrics lines. It is saved in checkpoints so that a
// resumed run writes the same lines as an uninterrupted one (time-based fields aside).
type window struct {
	Steps   int                `json:"steps"`
	Sums    map[string]float64 `json:"sums"`
	Tokens  int                `json:"tokens"`
	Slots   int                `json:"slots"` // padded token slots
	Seconds float64            `json:"seconds"`
	LastLR  float64            `json:"last_lr"`
}

func (w *window) add(stepMetrics map[string]float64, realTokens, slots int, seconds, lr float64) {
	if w.Sums == nil {
		w.Sums = map[string]float64{}
	}
	for k, v := range stepMetrics {
		w.Sums[k] += v
	}
	w.Steps++
	w.Tokens += realTokens
	w.Slots += slots
	w.Seconds += seconds
	w.LastLR = lr
}

// line turns the window into a metrics line and resets it.
func (w *window) line(step int, epoch float64, mode string, elapsed time.Duration) Metrics {
	n := float64(max(w.Steps, 1))
	mean := func(k string) float64 { return w.Sums[k] / n }
	ptr := func(k string) *float64 { v := mean(k); return &v }
	m := Metrics{
		Step: step, Epoch: epoch, Loss: mean("loss"), NLLLoss: mean("nll_loss"), GradNorm: mean("grad_norm"),
		LR: w.LastLR, ElapsedSeconds: elapsed.Seconds(),
	}
	if mode == ModeDPO {
		m.RewardsChosen, m.RewardsRejected = ptr("rewards/chosen"), ptr("rewards/rejected")
		m.RewardsAccuracy, m.RewardsMargins = ptr("rewards/accuracies"), ptr("rewards/margins")
		m.LogpsChosen, m.LogpsRejected = ptr("logps/chosen"), ptr("logps/rejected")
	}
	if w.Seconds > 0 {
		m.TokensPerSec = float64(w.Tokens) / w.Seconds
	}
	if w.Slots > 0 {
		m.PaddingFraction = 1 - float64(w.Tokens)/float64(w.Slots)
	}
	*w = window{}
	return m
}

// metricsLog appends lines to metrics.jsonl.
type metricsLog struct {
	f *os.File
}

// openMetrics opens path for appending. When resuming at step, lines of later steps (written
// by the killed run after its last checkpoint) are dropped first; otherwise the file starts
// empty.
func openMetrics(path string, resumeStep int, resuming bool) (*metricsLog, error) {
	if resuming {
		if err := truncateMetrics(path, resumeStep); err != nil {
			return nil, err
		}
	} else if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsLog{f: f}, nil
}

func (l *metricsLog) write(m Metrics) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = l.f.Write(append(b, '\n'))
	return err
}

func (l *metricsLog) Close() error { return l.f.Close() }

// truncateMetrics keeps the lines of path whose step is ≤ step.
func truncateMetrics(path string, step int) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m struct {
			Step int `json:"step"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.Step > step {
			continue
		}
		kept.Write(sc.Bytes())
		kept.WriteByte('\n')
	}
	return writeFileAtomic(path, kept.Bytes())
}

// stepClock estimates a run's time left from the optimizer steps that compiled nothing. A
// step with a micro-batch shape ([rows, sequence]) the training program has not met before
// also compiles that shape's program, which on XLA takes seconds to minutes: on an H100 a run
// of the demo's model logged eta=13m40s at step 5, and its remaining 285 steps took 16 s, 14 s
// of it in the two that compiled. Averaged in, such steps put the ETA off many times over,
// so it comes from the other steps alone (and is unknown until there is one). New shapes met
// later still compile, so it can come out short by their compilation.
type stepClock struct {
	shapes map[[2]int]bool // micro-batch shapes met so far (a session's: earlier personas' too)
	steady time.Duration   // time of the steps that met no new shape
	n      int             // how many
}

// add records a step's micro-batches and the time it took.
func (k *stepClock) add(batches []data.Batch, dt time.Duration) {
	fresh := false
	for _, b := range batches {
		s := batchShape(b)
		if !k.shapes[s] {
			k.shapes[s], fresh = true, true
		}
	}
	if !fresh {
		k.steady += dt
		k.n++
	}
}

// eta is the time that left more steps take at the steady steps' mean; false before any.
func (k *stepClock) eta(left int) (time.Duration, bool) {
	if k.n == 0 {
		return 0, false
	}
	return k.steady / time.Duration(k.n) * time.Duration(left), true
}

// progress draws a one-line progress bar with ETA on a terminal.
type progress struct {
	w          io.Writer
	total      int
	start      time.Time
	lastDrawn  time.Time
	lastLength int
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

// update redraws the bar after step (1-based count of completed steps) with the time left
// (eta, when known), at most 10 times a second.
func (p *progress) update(step int, eta time.Duration, etaKnown bool, loss, acc float64, mode string) {
	if p == nil || p.w == nil {
		return
	}
	now := time.Now()
	if step < p.total && now.Sub(p.lastDrawn) < 100*time.Millisecond {
		return
	}
	p.lastDrawn = now
	done := float64(step) / float64(max(p.total, 1))
	const width = 30
	filled := int(done * width)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	left := "?"
	if etaKnown {
		left = eta.Round(time.Second).String()
	}
	stats := fmt.Sprintf("loss %.4f", loss)
	if mode == ModeDPO {
		stats += fmt.Sprintf(" acc %.2f", acc)
	}
	line := fmt.Sprintf("\r[%s] %d/%d steps  %s  elapsed %s  ETA %s", bar, step, p.total, stats,
		now.Sub(p.start).Round(time.Second), left)
	pad := ""
	if d := p.lastLength - len(line); d > 0 {
		pad = strings.Repeat(" ", d)
	}
	p.lastLength = len(line)
	fmt.Fprint(p.w, line+pad)
}

// finish ends the bar's line (once).
func (p *progress) finish() {
	if p != nil && p.w != nil && p.lastLength > 0 {
		fmt.Fprintln(p.w)
		p.lastLength = 0
	}
}

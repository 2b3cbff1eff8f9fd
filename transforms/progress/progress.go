// Package progress prints a running job's progress with a rate and an ETA: one line per
// task whenever its count moved, at most once per interval. The local-runner launchers use
// it over the LLM call counters (llm.SharedDone), which their in-process DoFns advance; on
// Dataflow the workers are elsewhere and the Dataflow console shows the job's counters.
//
// Lines, not a redrawn bar: the launchers' output goes to terminals, CI logs and the demo's
// combined log alike, and a line per interval reads well in all three.
package progress

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Task is one counted phase of a job.
type Task struct {
	// Name leads the line ("generate").
	Name string
	// Total is the number of units the phase has; 0 means not known in advance (the line
	// then shows the count and rate without a percentage or ETA).
	Total int64
	// Done reads how many units have finished; it must be safe to call from another goroutine.
	Done func() int64
}

// Reporter prints the progress of tasks until stopped.
type Reporter struct {
	w     io.Writer
	every time.Duration
	now   func() time.Time
	tasks []*state

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

type state struct {
	Task
	start   time.Time // when the first unit was seen finished: the rate ignores set-up time
	first   int64     // units finished at start
	printed int64     // the count last printed (-1 before the first line)
}

// Start begins reporting tasks to w every interval (at least a second) and returns the
// Reporter; Stop it when the job ends. Tasks are reported in the given order.
func Start(ctx context.Context, w io.Writer, every time.Duration, tasks ...Task) *Reporter {
	r := newReporter(w, every, time.Now, tasks)
	go r.loop(ctx)
	return r
}

func newReporter(w io.Writer, every time.Duration, now func() time.Time, tasks []Task) *Reporter {
	r := &Reporter{w: w, every: max(every, time.Second), now: now, stop: make(chan struct{}), done: make(chan struct{})}
	for _, t := range tasks {
		r.tasks = append(r.tasks, &state{Task: t, printed: -1})
	}
	return r
}

func (r *Reporter) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.stop:
			return
		case <-t.C:
			r.tick()
		}
	}
}

// Stop ends the reporting and waits for the reporter's goroutine; it prints nothing more.
func (r *Reporter) Stop() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}

// tick prints a line for every task whose count changed since its last line.
func (r *Reporter) tick() {
	now := r.now()
	for _, s := range r.tasks {
		n := s.Done()
		if s.start.IsZero() {
			if n == 0 {
				continue
			}
			// The first units seen: start the clock here, so model loading and pipeline
			// set-up do not count against the rate. The first line has no rate yet.
			s.start, s.first = now, n
		}
		if n == s.printed {
			continue
		}
		s.printed = n
		fmt.Fprintln(r.w, s.line(n, now))
	}
}

// line formats "generate 120/720 (17%), 2.1/s, ETA 4m46s".
func (s *state) line(n int64, now time.Time) string {
	out := fmt.Sprintf("%s %d", s.Name, n)
	if s.Total > 0 {
		out = fmt.Sprintf("%s %d/%d (%d%%)", s.Name, n, s.Total, 100*n/s.Total)
	}
	el := now.Sub(s.start)
	if el <= 0 || n <= s.first {
		return out
	}
	rate := float64(n-s.first) / el.Seconds()
	out += fmt.Sprintf(", %.1f/s", rate)
	if s.Total > 0 && n < s.Total {
		eta := time.Duration(float64(s.Total-n) / rate * float64(time.Second))
		out += ", ETA " + eta.Round(time.Second).String()
	}
	return out
}

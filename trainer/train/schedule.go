package train

import "math"

// Schedule is the learning rate of each optimizer step: a linear warm-up from 0 to the peak
// over Warmup steps, then Kind's decay to 0 at Total steps. It reproduces transformers'
// get_{cosine,linear,constant}_schedule_with_warmup, so step 0 of a warm-up runs at lr 0.
type Schedule struct {
	Peak   float64
	Warmup int
	Total  int
	Kind   string // SchedulerCosine, SchedulerLinear or SchedulerConstant
}

// newSchedule derives the warm-up length from c: warmup_steps if set, else
// ⌈warmup_ratio · total⌉ as transformers' get_warmup_steps.
func newSchedule(c Config, total int) Schedule {
	warmup := c.WarmupSteps
	if warmup == 0 {
		warmup = int(math.Ceil(c.WarmupRatio * float64(total)))
	}
	return Schedule{Peak: c.LearningRate, Warmup: warmup, Total: total, Kind: c.Scheduler}
}

// LR is the learning rate of optimizer step (0-based).
func (s Schedule) LR(step int) float64 {
	if step < s.Warmup {
		return s.Peak * float64(step) / float64(max(1, s.Warmup))
	}
	switch s.Kind {
	case SchedulerConstant:
		return s.Peak
	case SchedulerLinear:
		return s.Peak * max(0, float64(s.Total-step)/float64(max(1, s.Total-s.Warmup)))
	default: // cosine
		progress := float64(step-s.Warmup) / float64(max(1, s.Total-s.Warmup))
		return s.Peak * max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	}
}

package generate

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSamplerDistribution draws from p = (0.5, 0.3, 0.2) with and without a 0.7 nucleus (which
// keeps the first two tokens, renormalized to 0.625 / 0.375) and at temperature 2.
func TestSamplerDistribution(t *testing.T) {
	logits := []float32{float32(math.Log(0.5)), float32(math.Log(0.3)), float32(math.Log(0.2))}
	tempered := func(temp float64) []float64 { // softmax(log p / T)
		w := []float64{math.Pow(0.5, 1/temp), math.Pow(0.3, 1/temp), math.Pow(0.2, 1/temp)}
		sum := w[0] + w[1] + w[2]
		for i := range w {
			w[i] /= sum
		}
		return w
	}
	for _, tc := range []struct {
		name       string
		temp, topP float64
		wantFreq   []float64
	}{
		{"full", 1, 0, []float64{0.5, 0.3, 0.2}},
		{"top_p=1", 1, 1, []float64{0.5, 0.3, 0.2}},
		{"top_p=0.7", 1, 0.7, []float64{0.625, 0.375, 0}},
		{"top_p=0.45", 1, 0.45, []float64{1, 0, 0}},
		{"T=2", 2, 0, tempered(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 40000
			rng := rand.New(rand.NewPCG(1, 2))
			var s sampler
			counts := make([]float64, len(logits))
			for range n {
				counts[s.sample(logits, tc.temp, tc.topP, rng)]++
			}
			for i, want := range tc.wantFreq {
				if got := counts[i] / n; math.Abs(got-want) > 0.01 || (want == 0 && got != 0) {
					t.Errorf("token %d: got frequency %.4f, want %.4f", i, got, want)
				}
			}
		})
	}
}

func TestGreedyTiesGoToTheLowestID(t *testing.T) {
	var s sampler
	logits := []float32{0, 3, 1, 3}
	if got := s.sample(logits, 0, 0, nil); got != 1 {
		t.Errorf("greedy: got %d, want 1", got)
	}
	if got := s.sample(logits, 1, 1e-9, rand.New(rand.NewPCG(1, 1))); got != 1 {
		t.Errorf("tiny top_p: got %d, want 1", got)
	}
}

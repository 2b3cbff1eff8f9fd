package generate

import (
	"math"
	"math/rand/v2"
	"slices"
)

// sampler picks the next token from one row's logits on the host. Its scratch buffers are
// reused across calls; it is not safe for concurrent use.
type sampler struct {
	probs []float64
	order []int32
}

// sample returns argmax(logits) when temperature is 0, else a draw from
// softmax(logits/temperature) restricted to the top-p nucleus (all tokens when topP is 0 or
// 1). Computed in float64; ties in the nucleus order go to the lower id, so a tiny topP is
// greedy decoding.
func (s *sampler) sample(logits []float32, temperature, topP float64, rng *rand.Rand) int {
	if temperature == 0 {
		return argmax(logits)
	}
	maxLogit := float64(logits[argmax(logits)])
	s.probs = slices.Grow(s.probs[:0], len(logits))[:len(logits)]
	var sum float64
	for i, l := range logits {
		p := math.Exp((float64(l) - maxLogit) / temperature)
		s.probs[i] = p
		sum += p
	}
	if topP <= 0 || topP >= 1 {
		return draw(s.probs, sum, rng)
	}

	s.order = slices.Grow(s.order[:0], len(logits))[:len(logits)]
	for i := range s.order {
		s.order[i] = int32(i)
	}
	probs := s.probs
	slices.SortFunc(s.order, func(a, b int32) int {
		switch {
		case probs[a] > probs[b]:
			return -1
		case probs[a] < probs[b]:
			return 1
		}
		return int(a - b)
	})
	// Keep the shortest prefix reaching topP of the mass (at least one token).
	var kept float64
	n := 0
	for n < len(s.order) {
		kept += probs[s.order[n]]
		n++
		if kept >= topP*sum {
			break
		}
	}
	u := rng.Float64() * kept
	for _, id := range s.order[:n] {
		u -= probs[id]
		if u < 0 {
			return int(id)
		}
	}
	return int(s.order[n-1]) // rounding left u ≥ 0 after the last kept token
}

// draw samples index i with probability probs[i]/sum.
func draw(probs []float64, sum float64, rng *rand.Rand) int {
	u := rng.Float64() * sum
	last := 0
	for i, p := range probs {
		if p == 0 {
			continue
		}
		last = i
		u -= p
		if u < 0 {
			return i
		}
	}
	return last
}

// argmax returns the index of the largest value, the lowest one on ties.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

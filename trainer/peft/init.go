package peft

import (
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
)

// NewRandom returns a freshly initialised adapter, as PEFT's LoraLayer.reset_lora_parameters
// does with init_lora_weights=True: A [r, in] from kaiming_uniform_(a=√5), which is
// U(−1/√in, 1/√in) (gain √(2/(1+a²)) = √(1/3), bound gain·√(3/in) = 1/√in), and B [out, r]
// zero, so the adapter starts as a no-op and only A's direction is random.
//
// The result is a pure function of (c, mc, seed): each module draws from its own PCG stream
// seeded with seed and a hash of its module path, so a module's values do not depend on the
// other targets or layers. (The values differ from PyTorch's for the same seed: only the
// distribution is PEFT's.) It panics if c or mc is invalid: callers validate configs first,
// so that is a programming error.
func NewRandom(c Config, mc model.Config, seed int64) *Adapter {
	if err := c.Validate(); err != nil {
		panic("peft.NewRandom: " + err.Error())
	}
	if err := mc.Validate(); err != nil {
		panic("peft.NewRandom: base model config: " + err.Error())
	}
	modules := Modules(mc, c.TargetModules)
	a := &Adapter{Config: c, A: make(map[string][]float32, len(modules)), B: make(map[string][]float32, len(modules))}
	a.Config.TargetModules = append([]string(nil), c.TargetModules...)
	for _, m := range modules {
		in, out, _ := ModuleShape(mc, m)
		a.A[m] = kaimingUniform(m, seed, c.R, in) // [r, in]
		a.B[m] = make([]float32, out*c.R)         // [out, r]
	}
	return a
}

// kaimingUniform draws r·in values from U(−1/√in, 1/√in) on the stream of (seed, module).
func kaimingUniform(module string, seed int64, r, in int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(module))
	rng := rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
	bound := 1 / math.Sqrt(float64(in))
	v := make([]float32, r*in)
	for i := range v {
		v[i] = float32((2*rng.Float64() - 1) * bound)
	}
	return v
}

package llama

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestProjectGradientsMatchDerived checks [Model.project]'s written-out backward against the
// gradients GoMLX derives for the plain formula x·Wᵀ + s·(mask ⊙ x)·Aᵀ·Bᵀ, in float64: three
// projections of one input (q and k with adapters and dropout masks, v without an adapter),
// the gradients of the input and of every adapter factor, and of the base weights when the
// base trains; with a result that does not reach the loss and with the adapter off.
func TestProjectGradientsMatchDerived(t *testing.T) {
	for _, c := range []struct {
		name      string
		trainBase bool
		adapter   Adapter
		unused    int // index of a result left out of the loss, -1 for none
	}{
		{"frozen", false, AdapterOn, -1},
		{"base_trains", true, AdapterOn, -1},
		{"k_unused", false, AdapterOn, 1},
		{"base_trains_adapter_off", true, AdapterOff, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			lora := LoRAConfig{Rank: 2, Alpha: 4, Dropout: 0.25, TargetModules: []string{"q_proj", "k_proj"}}
			store, m := newTinyModel(t, dtypes.Float64, lora)
			setLoRAB(t, store, m, 6, 0.2)
			m.TrainBase = c.trainBase
			cfg := m.Config
			n, h, kd := 5, cfg.HiddenSize, cfg.NumKeyValueHeads*cfg.HeadDimension()
			const layer = "model.layers.0.self_attn"
			names, outs := []string{"q_proj", "k_proj", "v_proj"}, []int{h, kd, kd}
			rng := rand.New(rand.NewPCG(4, 4))
			normal := func(size int) []float64 {
				d := make([]float64, size)
				for i := range d {
					d[i] = rng.NormFloat64()
				}
				return d
			}
			x := tensors.FromFlatDataAndDimensions(normal(n*h), n, h)
			masks := map[string][]bool{}
			for _, name := range names[:2] {
				keep := make([]bool, n*h)
				for i := range keep {
					keep[i] = rng.Float64() >= lora.Dropout
				}
				masks[name] = keep
			}
			lossWeights := make([][]float64, len(names))
			for i := range names {
				lossWeights[i] = normal(n * outs[i])
			}
			// The variables whose gradients are compared: every adapter factor, and the base
			// weights when they train (a frozen weight's gradient is GoMLX's in both).
			var checked []string
			for _, name := range names {
				if c.trainBase {
					checked = append(checked, fmt.Sprintf("%s.%s.weight", layer, name))
				}
				if bool(c.adapter) && lora.Targets(name) {
					checked = append(checked, fmt.Sprintf("%s.%s.lora_A.weight", layer, name), fmt.Sprintf("%s.%s.lora_B.weight", layer, name))
				}
			}
			run := func(plain bool) []*tensors.Tensor {
				exec, err := model.NewExec(backend(t), store, func(scope *model.Scope, inputs []*Node) []*Node {
					g := inputs[0].Graph()
					scope.SetTraining(g, true)
					maskNodes := map[string]*Node{}
					for name, keep := range masks {
						maskNodes[layer+"."+name] = Reshape(Const(g, keep), n, h)
					}
					mm := m.WithDropoutMasks(maskNodes)
					attn := at(scope, layer)
					value := func(name string) *Node { return store.GetVariable(VariablePath(layer + "." + name)).NodeValue(g) }
					x := inputs[0]
					var ys []*Node
					if plain {
						for _, name := range names {
							y := DotGeneral(x, []int{1}, nil, value(name+".weight"), []int{1}, nil)
							if bool(c.adapter) && lora.Targets(name) {
								xd, scale := Where(maskNodes[layer+"."+name], x, ZerosLike(x)), lora.Scale()*keepScale(lora.Dropout)
								za := DotGeneral(xd, []int{1}, nil, value(name+".lora_A.weight"), []int{1}, nil)
								zb := DotGeneral(za, []int{1}, nil, value(name+".lora_B.weight"), []int{1}, nil)
								y = Add(y, MulScalar(zb, scale))
							}
							ys = append(ys, y)
						}
					} else {
						ps := make([]projection, len(names))
						for i, name := range names {
							ps[i] = proj(attn, name, outs[i])
						}
						ys = mm.project(x, c.adapter, ps...)
					}
					var loss *Node
					for i, y := range ys {
						if i == c.unused {
							continue
						}
						term := ReduceAllSum(Mul(y, Reshape(Const(g, lossWeights[i]), n, outs[i])))
						if loss == nil {
							loss = term
						} else {
							loss = Add(loss, term)
						}
					}
					wrt := []*Node{x}
					for _, name := range checked {
						wrt = append(wrt, store.GetVariable(VariablePath(name)).NodeValue(g))
					}
					return append(append([]*Node{}, ys...), Gradient(loss, wrt...)...)
				})
				if err != nil {
					t.Fatal(err)
				}
				return exec.MustCall(x)
			}
			got, want := run(false), run(true)
			labels := append(append([]string{}, names...), "gradient of x")
			for _, name := range checked {
				labels = append(labels, "gradient of "+name)
			}
			if len(got) != len(labels) || len(want) != len(labels) {
				t.Fatalf("%d and %d outputs, want %d", len(got), len(want), len(labels))
			}
			for i, label := range labels {
				g, w := flatFloats(t, got[i]), flatFloats(t, want[i])
				if !got[i].Shape().Equal(want[i].Shape()) {
					t.Fatalf("%s: shape %s, want %s", label, got[i].Shape(), want[i].Shape())
				}
				nonzero := false
				for j := range g {
					if !near(g[j], w[j], 1e-12, 1e-12) {
						t.Fatalf("%s[%d] = %g, want %g", label, j, g[j], w[j])
					}
					nonzero = nonzero || w[j] != 0
				}
				if !nonzero && (c.unused < 0 || !strings.Contains(label, "gradient of "+layer+"."+names[c.unused])) {
					t.Errorf("%s is all zeros: the comparison proves nothing", label)
				}
			}
		})
	}
}

package llama

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// TestGradientCheckpointing compares a checkpointed training graph with the plain one, in
// float64: the loss and the gradient of every trainable variable must match, and the plain
// graph's backward must read forward activations of the MLP's width ([N, I]) and logits
// ([..., V]) while the checkpointed graph's reads none (it runs the layers again, and the
// output head chunk by chunk, in six chunks here). Cases:
// an adapter on every projection with dropout masks fed as inputs, the same with masks drawn
// in the graph (both graphs from one RNG state), both with the uncached DPO loss (a
// reference pass with the adapter off in the same graph); and the base training on the
// completion NLL (full fine-tuning: every layer weight is an input of the checkpointed block,
// and the output head's weight trains: its own, or the tied embedding's).
func TestGradientCheckpointing(t *testing.T) {
	for _, c := range []struct {
		name                      string
		hostMasks, trainBase, tie bool
	}{
		{"lora_host_masks", true, false, false},
		{"lora_graph_masks", false, false, false},
		{"full", false, true, false},
		{"full_tied", false, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			lora := LoRAConfig{Rank: 2, Alpha: 4, Dropout: 0.25,
				TargetModules: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}
			cfg := tinyConfig()
			cfg.TieWordEmbeddings = c.tie
			m, err := New(cfg, dtypes.Float64, &lora)
			if err != nil {
				t.Fatal(err)
			}
			store := model.NewStore()
			if err := LoadWeights(store, cfg, dtypes.Float64, randomWeights(cfg, 1, 0.3)); err != nil {
				t.Fatal(err)
			}
			if err := AddLoRA(store, m, 2); err != nil {
				t.Fatal(err)
			}
			setLoRAB(t, store, m, 6, 0.2)
			m.TrainBase = c.trainBase
			batch := preferenceBatch(rand.New(rand.NewPCG(3, 3)), 2, 7, 3, m.Config.VocabSize, 5, 6)
			rows := 2 * 2 * 7
			specs := m.DropoutMasks(rows)
			masks := DrawDropoutMasks(specs, lora.Dropout, 9)
			var names []string
			if c.trainBase {
				for _, s := range ExpectedWeights(m.Config) {
					names = append(names, s.Name)
				}
			} else {
				for _, s := range LoRAWeightSpecs(m.Config, lora) {
					names = append(names, s.Name)
				}
			}
			run := func(checkpointing bool) (outs [][]float64, reads int) {
				mc := *m
				mc.GradientCheckpointing = checkpointing
				mc.headRows = 5 // 28 rows: six chunks, the last of three
				exec, err := model.NewExec(backend(t), store, func(scope *model.Scope, inputs []*Node) []*Node {
					g := inputs[0].Graph()
					scope.SetTraining(g, true)
					mm := &mc
					if c.hostMasks {
						byModule := map[string]*Node{}
						for i, s := range specs {
							byModule[s.Module] = inputs[3+i]
						}
						mm = mm.WithDropoutMasks(byModule)
					}
					var loss *Node
					if c.trainBase {
						loss = Neg(ReduceAllSum(mm.SequenceLogProbs(scope, inputs[0], inputs[1], inputs[2], AdapterOff)))
					} else {
						loss, _ = mm.DPOBatchLoss(scope, DPOConfig{Beta: 0.5, LossType: LossSigmoid}, inputs[0], inputs[1], inputs[2], nil, nil)
					}
					wrt := make([]*Node, len(names))
					for i, name := range names {
						wrt[i] = store.GetVariable(VariablePath(name)).NodeValue(g)
					}
					grads := Gradient(loss, wrt...)
					// Forward [N, I] float activations that a backward node (built after the
					// loss) reachable from the gradients reads directly.
					seen, read := map[NodeId]bool{}, map[NodeId]bool{}
					isActivation := func(n *Node) bool {
						dims := n.Shape().Dimensions
						return n.Id() <= loss.Id() && n.DType().IsFloat() && (slices.Equal(dims, []int{rows, m.Config.IntermediateSize}) ||
							len(dims) >= 2 && dims[len(dims)-1] == m.Config.VocabSize) // MLP activations, logits
					}
					var walk func(n *Node)
					walk = func(n *Node) {
						if seen[n.Id()] || n.Id() <= loss.Id() {
							return
						}
						seen[n.Id()] = true
						for _, in := range n.Inputs() {
							if isActivation(in) {
								read[in.Id()] = true
							}
							walk(in)
						}
					}
					for _, gr := range grads {
						walk(gr)
					}
					reads = len(read)
					return append([]*Node{loss}, grads...)
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := store.SetRNGStateFromSeed(5); err != nil {
					t.Fatal(err)
				}
				args := batch.args()
				if c.hostMasks {
					for _, x := range masks {
						args = append(args, x)
					}
				}
				for _, x := range exec.MustCall(args...) {
					outs = append(outs, flatFloats(t, x))
				}
				return outs, reads
			}
			plain, plainReads := run(false)
			ckpt, ckptReads := run(true)
			if plainReads == 0 {
				t.Fatalf("the plain graph's gradients read no forward [N, I] activation; the test cannot tell checkpointing apart")
			}
			if ckptReads != 0 {
				t.Errorf("the checkpointed graph's gradients read %d forward [N, I] activations, want 0", ckptReads)
			}
			// Equal on the pure-Go backend; XLA fuses the blocked head differently, and on an
			// H100 the float64 losses differed in the last bit.
			if d := abs(plain[0][0] - ckpt[0][0]); d > 1e-12*abs(plain[0][0]) {
				t.Errorf("loss %v with checkpointing, %v without", ckpt[0][0], plain[0][0])
			}
			for i, name := range names {
				p, q := plain[i+1], ckpt[i+1]
				scale := 0.0
				for _, v := range p {
					scale = max(scale, abs(v))
				}
				if scale == 0 {
					t.Errorf("%s: zero gradient; the test needs it to matter", name)
				}
				if d := maxAbsDiff(p, q); d > 1e-12*scale {
					t.Errorf("%s: gradients with and without checkpointing differ by %g (largest %g)", name, d, scale)
				}
			}
		})
	}
}

func abs(x float64) float64 { return max(x, -x) }

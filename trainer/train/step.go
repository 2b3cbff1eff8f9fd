package train

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
)

// One optimizer step is GradAccum calls of the micro-step executor, each adding
// weight·∇loss(micro-batch) into a gradient accumulator per adapter tensor, then one call of the
// apply executor: global-norm clipping and PyTorch's AdamW on the accumulated gradient. The
// weight of a micro-batch is its share of the step's pairs (dpo) or completion tokens (sft),
// so accumulation reproduces the gradient of the whole step's batch: 2 × 2 pairs equals 1 × 4.
//
// Store paths of the optimizer state, beside the model's own variables (see llama's package
// doc); name is the adapter tensor's variable path, e.g. /model/layers/0/.../lora_A/weight:
const (
	accScope = "/train/grad_acc" // accumulated gradient of the current step
	expAvg   = "/train/exp_avg"  // AdamW first moment m
	expAvgSq = "/train/exp_avg_sq"
)

// trainVars are the adapter tensors and their optimizer state, in llama.LoRAWeightSpecs order.
type trainVars struct {
	names         []string // Hugging Face names, "model.layers.0.self_attn.q_proj.lora_A.weight"
	params        []*model.Variable
	acc, mom, vel []*model.Variable
}

// newTrainVars finds the adapter variables of m in store and creates zeroed accumulators and
// AdamW moments for them (float32, not trainable).
func newTrainVars(store *model.Store, m *llama.Model) (*trainVars, error) {
	tv := &trainVars{}
	for _, s := range llama.LoRAWeightSpecs(m.Config, *m.LoRA) {
		p := store.GetVariable(llama.VariablePath(s.Name))
		if p == nil {
			return nil, fmt.Errorf("train: no adapter variable %s (AddLoRA first)", s.Name)
		}
		tv.names = append(tv.names, s.Name)
		tv.params = append(tv.params, p)
		for _, x := range []struct {
			scope string
			dst   *[]*model.Variable
		}{{accScope, &tv.acc}, {expAvg, &tv.mom}, {expAvgSq, &tv.vel}} {
			path := x.scope + llama.VariablePath(s.Name)
			zero := tensors.FromShape(p.Shape())
			v := store.GetVariable(path)
			if v == nil {
				var err error
				if v, err = store.CreateVariable(path, zero); err != nil {
					return nil, fmt.Errorf("train: %s: %w", path, err)
				}
			} else if err := v.SetValue(zero); err != nil {
				return nil, fmt.Errorf("train: %s: %w", path, err)
			}
			v.Trainable = false
			*x.dst = append(*x.dst, v)
		}
	}
	return tv, nil
}

// microMetricNames names the outputs of the micro-step executor after the loss: the DPO
// metrics of llama.DPOMetricNames, or for sft the completion-token count.
func microMetricNames(mode string) []string {
	if mode == ModeSFT {
		return []string{"tokens"}
	}
	return llama.DPOMetricNames
}

// newMicroStep returns the executor of one micro-batch:
//
//	(ids, attention, completion [2B, S] int32 — chosen rows then rejected; sft: [B, S] chosen only,
//	 weight scalar f32 [, refChosen, refRejected [B] f32 — cached reference log-probs])
//	→ loss, metrics… (scalars, before any update)
//
// It adds weight·∇loss to the gradient accumulators; dropout draws from the store's RNG state,
// which the loop seeds per micro-batch.
func newMicroStep(backend compute.Backend, store *model.Store, m *llama.Model, c Config, tv *trainVars) (*model.Exec, error) {
	dpo := c.dpoConfig()
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, inputs []*Node) []*Node {
		if len(inputs) != 4 && len(inputs) != 6 {
			Panicf("train: micro-step takes 4 or 6 inputs, got %d", len(inputs))
		}
		g := inputs[0].Graph()
		// Before any variable is read: otherwise the Go backend bakes variables in as constants.
		scope.SetTraining(g, true)
		ids, attn, compl, weight := inputs[0], inputs[1], inputs[2], inputs[3]
		var loss *Node
		var metrics []*Node
		if c.Mode == ModeSFT {
			lp := m.SequenceLogProbs(scope, ids, attn, compl, llama.AdapterOn)      // [B]
			n := ReduceAllSum(llama.CompletionTokenCounts(attn, compl, lp.DType())) // scalar
			loss = Neg(Div(ReduceAllSum(lp), MaxScalar(n, 1)))
			metrics = []*Node{n}
		} else {
			var refC, refR *Node
			if len(inputs) == 6 {
				refC, refR = inputs[4], inputs[5]
			}
			loss, metrics = m.DPOBatchLoss(scope, dpo, ids, attn, compl, refC, refR)
		}
		nodes := make([]*Node, len(tv.params))
		for i, p := range tv.params {
			nodes[i] = p.NodeValue(g)
		}
		grads := Gradient(loss, nodes...)
		w := ConvertDType(weight, loss.DType())
		for i, acc := range tv.acc {
			acc.SetNodeValue(Add(acc.NodeValue(g), Mul(ConvertDType(grads[i], acc.DType()), w)))
		}
		return append([]*Node{loss}, metrics...)
	})
	if err != nil {
		return nil, err
	}
	// One graph per batch shape: up to max_length/pad_to lengths × the batch sizes seen.
	// GoMLX's default cap (32) would fail mid-run, so the cache is unbounded.
	return exec.SetMaxCache(-1), nil
}

// newApplyStep returns the executor of the optimizer update:
//
//	(lr, biasCorrection1 = 1−β₁ᵗ, biasCorrection2 = 1−β₂ᵗ: scalars f32) → grad_norm (scalar f32)
//
// It clips the accumulated gradient g to global L2 norm MaxGradNorm (PyTorch's
// clip_grad_norm_: g·min(1, max/(‖g‖+1e-6))), applies PyTorch's AdamW
//
//	p ← p·(1 − lr·wd);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  p ← p − lr·(m/bc₁)/(√(v/bc₂) + ε)
//
// and zeroes the accumulators. If ‖g‖ is not finite nothing but the accumulators changes: the
// loop then stops with the last good weights. grad_norm is the norm before clipping.
func newApplyStep(backend compute.Backend, store *model.Store, c Config, tv *trainVars) (*model.Exec, error) {
	return model.NewExec(backend, store, func(scope *model.Scope, lr, bc1, bc2 *Node) *Node {
		g := lr.Graph()
		scope.SetTraining(g, true)
		grads := make([]*Node, len(tv.acc))
		var sumSq *Node
		for i, acc := range tv.acc {
			grads[i] = acc.NodeValue(g)
			s := ReduceAllSum(Square(grads[i]))
			if sumSq == nil {
				sumSq = s
			} else {
				sumSq = Add(sumSq, s)
			}
		}
		norm := Sqrt(sumSq)
		finite := IsFinite(norm)
		coef := OnesLike(norm)
		if c.MaxGradNorm > 0 {
			coef = MinScalar(Div(Scalar(g, norm.DType(), c.MaxGradNorm), AddScalar(norm, 1e-6)), 1)
		}
		b1, b2 := c.AdamBeta1, c.AdamBeta2
		for i, p := range tv.params {
			grad := Mul(grads[i], coef)
			pv := p.NodeValue(g)
			m := Add(MulScalar(tv.mom[i].NodeValue(g), b1), MulScalar(grad, 1-b1))
			v := Add(MulScalar(tv.vel[i].NodeValue(g), b2), MulScalar(Square(grad), 1-b2))
			denom := AddScalar(Sqrt(Div(v, bc2)), c.AdamEpsilon)
			newP := pv
			if c.WeightDecay > 0 {
				newP = Mul(pv, OneMinus(MulScalar(lr, c.WeightDecay)))
			}
			newP = Sub(newP, Mul(lr, Div(Div(m, bc1), denom)))
			p.SetNodeValue(Where(finite, newP, pv))
			tv.mom[i].SetNodeValue(Where(finite, m, tv.mom[i].NodeValue(g)))
			tv.vel[i].SetNodeValue(Where(finite, v, tv.vel[i].NodeValue(g)))
			tv.acc[i].SetNodeValue(ZerosLike(grads[i]))
		}
		return norm
	})
}

// biasCorrections returns 1−β₁ᵗ and 1−β₂ᵗ for the 1-based AdamW step t, computed in float64.
func biasCorrections(c Config, t int) (float32, float32) {
	return float32(1 - math.Pow(c.AdamBeta1, float64(t))), float32(1 - math.Pow(c.AdamBeta2, float64(t)))
}

// scalarF32 is a host scalar for executor inputs.
func scalarF32(x float64) *tensors.Tensor { return tensors.FromValue(float32(x)) }

package train

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"

	"github.com/pantrypilot/recipe-dpo/trainer/data"
	"github.com/pantrypilot/recipe-dpo/trainer/llama"
)

// One optimizer step is GradAccum calls of the micro-step executor, each adding
// weight·∇loss(micro-batch) into a gradient accumulator per trained tensor (adapter factors,
// or with --full every base weight), then one call of the
// apply executor: global-norm clipping and PyTorch's AdamW on the accumulated gradient. The
// weight of a micro-batch is its share of the step's pairs (dpo) or completion tokens (sft),
// so accumulation reproduces the gradient of the whole step's batch: 2 × 2 pairs equals 1 × 4.
//
// Store paths of the optimizer state, beside the model's own variables (see llama's package
// doc); name is the trained tensor's variable path, e.g. /model/layers/0/.../lora_A/weight:
const (
	accScope = "/train/grad_acc" // accumulated gradient of the current step
	expAvg   = "/train/exp_avg"  // AdamW first moment m
	expAvgSq = "/train/exp_avg_sq"
)

// trainVars are the trained tensors and their optimizer state: the adapter's, in
// llama.LoRAWeightSpecs order, or with --full every base weight, in llama.ExpectedWeights order.
type trainVars struct {
	names         []string // Hugging Face names, "model.layers.0.self_attn.q_proj.lora_A.weight"
	params        []*model.Variable
	acc, mom, vel []*model.Variable
	// decay says which params AdamW's weight decay applies to: every adapter tensor; with
	// --full the projection matrices (and an untied lm_head) only — see decays.
	decay []bool
	full  bool // params are the base weights (--full), not an adapter
}

// trainedSpecs lists the tensors m trains: the base weights when m.TrainBase (full
// fine-tuning; m then has no adapter), otherwise the adapter's factors.
func trainedSpecs(m *llama.Model) []llama.WeightSpec {
	if m.TrainBase {
		return llama.ExpectedWeights(m.Config)
	}
	return llama.LoRAWeightSpecs(m.Config, *m.LoRA)
}

// decays reports whether weight decay applies to the trained tensor name of shape dims. With
// full fine-tuning it is the common practice (GPT-2/minGPT, Llama recipes): matrices of the
// linear layers decay — q/k/v/o, gate/up/down and an untied lm_head — while the RMSNorm
// gains (1-D) and the token embedding (model.embed_tokens.weight, which is also the LM head
// when the embeddings are tied) do not: decaying gains pulls them towards 0 instead of their
// natural 1, and decaying the embedding shrinks rare tokens' rows that get almost no
// gradient. Adapter factors all decay, as before.
func decays(full bool, name string, dims []int) bool {
	if !full {
		return true
	}
	return len(dims) == 2 && name != "model.embed_tokens.weight"
}

// newTrainVars finds the trained variables of m in store (the adapter, or every base weight
// with m.TrainBase) and creates zeroed accumulators and AdamW moments for them (float32, not
// trainable).
func newTrainVars(store *model.Store, m *llama.Model) (*trainVars, error) {
	if !m.TrainBase && m.LoRA == nil {
		return nil, fmt.Errorf("train: the model trains nothing: neither an adapter nor its base weights")
	}
	tv := &trainVars{full: m.TrainBase}
	for _, s := range trainedSpecs(m) {
		p := store.GetVariable(llama.VariablePath(s.Name))
		if p == nil {
			if tv.full {
				return nil, fmt.Errorf("train: no base weight variable %s (load the base weights first)", s.Name)
			}
			return nil, fmt.Errorf("train: no adapter variable %s (AddLoRA first)", s.Name)
		}
		if p.DType() != dtypes.Float32 {
			return nil, fmt.Errorf("train: trained weight %s is %s; it must be float32 (full fine-tuning needs --dtype f32)", s.Name, p.DType())
		}
		p.Trainable = true
		tv.names = append(tv.names, s.Name)
		tv.params = append(tv.params, p)
		tv.decay = append(tv.decay, decays(tv.full, s.Name, s.Shape))
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
//	 weight scalar f32 [, refChosen, refRejected [B] f32 — cached reference log-probs]
//	 [, dropout masks…])
//	→ loss, metrics… (scalars, before any update)
//
// It adds weight·∇loss to the gradient accumulators. With hostMasks the LoRA dropout masks
// follow as further inputs ([2B·S, in] Bool each, in llama's Model.DropoutMasks order; see
// [hostDropout]); otherwise dropout draws from the store's RNG state. The loop seeds either
// per micro-batch.
func newMicroStep(backend compute.Backend, store *model.Store, m *llama.Model, c Config, tv *trainVars, hostMasks bool) (*model.Exec, error) {
	dpo := c.dpoConfig()
	nMasks := 0
	if hostMasks {
		nMasks = len(m.DropoutMasks(0))
	}
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, inputs []*Node) []*Node {
		if n := len(inputs) - nMasks; n != 4 && n != 6 {
			Panicf("train: micro-step takes 4 or 6 inputs and %d dropout masks, got %d inputs", nMasks, len(inputs))
		}
		g := inputs[0].Graph()
		// Before any variable is read: otherwise the Go backend bakes variables in as constants.
		scope.SetTraining(g, true)
		ids, attn, compl, weight := inputs[0], inputs[1], inputs[2], inputs[3]
		m := m
		if nMasks > 0 {
			fixed := len(inputs) - nMasks
			masks := map[string]*Node{}
			for i, s := range m.DropoutMasks(ids.Shape().Size()) {
				masks[s.Module] = inputs[fixed+i]
			}
			m = m.WithDropoutMasks(masks)
			inputs = inputs[:fixed]
		}
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
			} else if m.TrainBase {
				// In-graph, the reference would be the moving weights themselves.
				Panicf("train: dpo with full fine-tuning needs the initial weights' reference log-probs as inputs")
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

// hostDropout reports whether the training graph takes its LoRA dropout masks as inputs drawn
// in Go (llama.DrawDropoutMasks): on GoMLX's pure-Go backend, whose in-graph random draw is
// slow (see llama's dropout.go), when the adapter has dropout. XLA backends draw on the device.
func hostDropout(backend compute.Backend, m *llama.Model) bool {
	return isGoBackend(backend) && !testInGraphDropout && len(m.DropoutMasks(0)) > 0
}

// dropoutMasks draws the LoRA dropout masks of micro-batch b (with hostMasks; see
// [newMicroStep]) from seed, as micro-step arguments.
func dropoutMasks(m *llama.Model, b data.Batch, seed int64) []any {
	var args []any
	for _, t := range llama.DrawDropoutMasks(m.DropoutMasks(len(b.Tokens)*b.Seq), m.LoRA.Dropout, uint64(seed)) {
		args = append(args, t)
	}
	return args
}

// drawAhead starts drawing, in the background, the dropout masks of optimizer step s's
// micro-batches (seeded as dropoutSeed(seed, s, j)) and returns where each will arrive. The
// trainer draws one step ahead, so the draws overlap the graph's execution of the step before
// (GoMLX's Go backend leaves a core idle between and within many ops).
func drawAhead(m *llama.Model, seed int64, s int, batches []data.Batch) []<-chan []any {
	out := make([]<-chan []any, len(batches))
	for j, b := range batches {
		ch := make(chan []any, 1)
		out[j] = ch
		go func() { ch <- dropoutMasks(m, b, dropoutSeed(seed, s, j)) }()
	}
	return out
}

// newApplyStep returns the executor of the optimizer update:
//
//	(lr, biasCorrection1 = 1−β₁ᵗ, biasCorrection2 = 1−β₂ᵗ: scalars f32) → grad_norm (scalar f32)
//
// It clips the accumulated gradient g to global L2 norm MaxGradNorm (PyTorch's
// clip_grad_norm_: g·min(1, max/(‖g‖+1e-6))), applies PyTorch's AdamW
//
//	p ← p·(1 − lr·wd) (only where tv.decay);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  p ← p − lr·(m/bc₁)/(√(v/bc₂) + ε)
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
			if c.WeightDecay > 0 && tv.decay[i] {
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

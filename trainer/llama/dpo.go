package llama

import (
	"errors"
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// LossType selects the preference loss, with TRL's names.
type LossType string

// The supported losses; z = (πc − πr) − (rc − rr), the policy's log-ratio margin over the
// reference's.
const (
	// LossSigmoid is DPO: −log σ(βz), with label smoothing ε (cDPO):
	// (1−ε)·−log σ(βz) + ε·−log σ(−βz).
	LossSigmoid LossType = "sigmoid"
	// LossIPO is (z − 1/(2β))², on per-token average log-probs as TRL computes it.
	LossIPO LossType = "ipo"
	// LossHinge is SLiC: relu(1 − βz).
	LossHinge LossType = "hinge"
	// LossRobust is rDPO: ((1−ε)·−log σ(βz) − ε·−log σ(−βz)) / (1 − 2ε).
	LossRobust LossType = "robust"
)

// DPOConfig holds the preference-loss hyper-parameters (TRL's DPOConfig names).
type DPOConfig struct {
	Beta           float64  `json:"beta"`
	LossType       LossType `json:"loss_type"`
	LabelSmoothing float64  `json:"label_smoothing"` // ε of sigmoid and robust
	// RPOAlpha weighs the NLL of the chosen completions (mean per token) added to the loss
	// (RPO); 0 disables it.
	RPOAlpha float64 `json:"rpo_alpha"`
}

// DefaultDPOConfig is TRL's default: sigmoid loss, β = 0.1.
func DefaultDPOConfig() DPOConfig { return DPOConfig{Beta: 0.1, LossType: LossSigmoid} }

// Validate checks the config with messages that name the field to fix.
func (c DPOConfig) Validate() error {
	var errs []error
	if !(c.Beta > 0) {
		errs = append(errs, fmt.Errorf("beta (%g) must be > 0", c.Beta))
	}
	switch c.LossType {
	case LossSigmoid, LossIPO, LossHinge:
	case LossRobust:
		if !(c.LabelSmoothing < 0.5) {
			errs = append(errs, fmt.Errorf("label_smoothing (%g) must be < 0.5 for the robust loss", c.LabelSmoothing))
		}
	default:
		errs = append(errs, fmt.Errorf("loss_type %q is not supported; use sigmoid, ipo, hinge or robust", c.LossType))
	}
	if !(c.LabelSmoothing >= 0 && c.LabelSmoothing <= 0.5) {
		errs = append(errs, fmt.Errorf("label_smoothing (%g) must be in [0, 0.5]", c.LabelSmoothing))
	}
	if c.LabelSmoothing != 0 && c.LossType != LossSigmoid && c.LossType != LossRobust {
		errs = append(errs, fmt.Errorf("label_smoothing applies only to the sigmoid and robust losses, not %s", c.LossType))
	}
	if c.RPOAlpha < 0 {
		errs = append(errs, fmt.Errorf("rpo_alpha (%g) must be >= 0", c.RPOAlpha))
	}
	return errors.Join(errs...)
}

// PairLogProbs are the per-pair inputs of the preference losses, each [B]: summed completion
// log-probs of the policy and of the reference for the chosen and the rejected completions, and
// the completion token counts (for IPO's per-token averages and RPO's per-token NLL).
type PairLogProbs struct {
	PolicyChosen, PolicyRejected *Node
	RefChosen, RefRejected       *Node
	ChosenTokens, RejectedTokens *Node
}

// DPOMetricNames names, in order, the scalars DPOLoss returns besides the loss (TRL's names).
var DPOMetricNames = []string{
	"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
	"logps/chosen", "logps/rejected", "nll_loss",
}

// DPOLoss returns the scalar loss (mean over pairs, plus RPOAlpha × NLL) and the metrics named
// by [DPOMetricNames], all scalars: rewards are β·(π − r) per pair, averaged; accuracies is the
// fraction of pairs whose chosen reward beats the rejected one; nll_loss is −Σπc / Σ chosen
// tokens. For IPO every log-prob is first divided by its token count, as TRL does.
// The reference log-probs get no gradient.
//
// The formulas and their averaging were checked line by line against TRL's DPOTrainer source
// (dpo_loss, concatenated_forward and get_batch_loss_metrics, read through the code search; TRL
// itself cannot be installed here): the sigmoid, robust, hinge and ipo losses, IPO's per-token
// averages (all_logps / loss_mask.sum(-1)), the mean over pairs, and RPO's
// losses + rpo_alpha·nll_loss with nll_loss the mean cross-entropy over the chosen completion
// tokens. One difference is deliberate: TRL computes that cross-entropy with ignore_index=0 on
// labels zeroed outside the completion, so a completion token whose id is 0 is skipped too;
// here every completion token counts.
func DPOLoss(cfg DPOConfig, lp PairLogProbs) (loss *Node, metrics []*Node) {
	if err := cfg.Validate(); err != nil {
		Panicf("llama: DPOLoss: %v", err)
	}
	pc, pr := lp.PolicyChosen, lp.PolicyRejected
	rc, rr := StopGradient(lp.RefChosen), StopGradient(lp.RefRejected)
	nc, nr := StopGradient(lp.ChosenTokens), StopGradient(lp.RejectedTokens)
	pc.AssertRank(1)
	nll := Neg(Div(ReduceAllSum(pc), ReduceAllSum(nc))) // scalar
	if cfg.LossType == LossIPO {
		pc, pr, rc, rr = Div(pc, nc), Div(pr, nr), Div(rc, nc), Div(rr, nr)
	}
	z := Sub(Sub(pc, pr), Sub(rc, rr)) // [B]
	bz := MulScalar(z, cfg.Beta)       // [B]
	eps := cfg.LabelSmoothing
	var losses *Node // [B]
	switch cfg.LossType {
	case LossSigmoid:
		losses = MulScalar(NegLogSigmoid(bz), 1-eps)
		if eps != 0 {
			losses = Add(losses, MulScalar(NegLogSigmoid(Neg(bz)), eps))
		}
	case LossRobust:
		losses = Sub(MulScalar(NegLogSigmoid(bz), 1-eps), MulScalar(NegLogSigmoid(Neg(bz)), eps))
		losses = MulScalar(losses, 1/(1-2*eps))
	case LossHinge:
		losses = MaxScalar(OneMinus(bz), 0)
	case LossIPO:
		losses = Square(AddScalar(z, -1/(2*cfg.Beta)))
	}
	loss = ReduceAllMean(losses)
	if cfg.RPOAlpha != 0 {
		loss = Add(loss, MulScalar(nll, cfg.RPOAlpha))
	}

	chosenRewards := StopGradient(MulScalar(Sub(pc, rc), cfg.Beta))   // [B]
	rejectedRewards := StopGradient(MulScalar(Sub(pr, rr), cfg.Beta)) // [B]
	accuracies := ConvertDType(GreaterThan(chosenRewards, rejectedRewards), chosenRewards.DType())
	metrics = []*Node{
		ReduceAllMean(chosenRewards),
		ReduceAllMean(rejectedRewards),
		ReduceAllMean(accuracies),
		ReduceAllMean(Sub(chosenRewards, rejectedRewards)),
		ReduceAllMean(StopGradient(pc)),
		ReduceAllMean(StopGradient(pr)),
		StopGradient(nll),
	}
	return loss, metrics
}

// NegLogSigmoid is −log σ(x) = softplus(−x), written −min(x, 0) + log(1 + e^−|x|): stable for
// large |x| and differentiable on GoMLX's Go backend, which has no gradient for Log1p.
func NegLogSigmoid(x *Node) *Node {
	return Add(Neg(MinScalar(x, 0)), Log(OnePlus(Exp(Neg(Abs(x))))))
}

// DPOBatchLoss builds the preference loss of a batch in TRL's concatenated layout: ids,
// attentionMask and completionMask are [2B, S] with rows [0, B) the chosen sequences and
// [B, 2B) the rejected ones. The policy is the model with the adapter on; the reference is the
// same graph with the adapter off, unless refChosen and refRejected ([B] summed log-probs,
// e.g. cached in the data set) are given — both or neither.
func (m *Model) DPOBatchLoss(scope *model.Scope, cfg DPOConfig, ids, attentionMask, completionMask, refChosen, refRejected *Node) (loss *Node, metrics []*Node) {
	if (refChosen == nil) != (refRejected == nil) {
		Panicf("llama: DPOBatchLoss needs both cached reference log-probs or neither")
	}
	n := ids.Shape().Dimensions[0]
	if n%2 != 0 {
		Panicf("llama: DPOBatchLoss wants an even batch (chosen then rejected rows), got %s", ids.Shape())
	}
	half := n / 2
	first := func(x *Node) *Node { return Slice(x, AxisRange(0, half)) }
	second := func(x *Node) *Node { return Slice(x, AxisRange(half, n)) }

	policy := m.SequenceLogProbs(scope, ids, attentionMask, completionMask, AdapterOn) // [2B]
	dtype := policy.DType()
	if refChosen == nil {
		ref := StopGradient(m.SequenceLogProbs(scope, ids, attentionMask, completionMask, AdapterOff)) // [2B]
		refChosen, refRejected = first(ref), second(ref)
	}
	if refChosen.DType() != dtype {
		refChosen, refRejected = ConvertDType(refChosen, dtype), ConvertDType(refRejected, dtype)
	}
	counts := CompletionTokenCounts(attentionMask, completionMask, dtype) // [2B]
	return DPOLoss(cfg, PairLogProbs{
		PolicyChosen: first(policy), PolicyRejected: second(policy),
		RefChosen: refChosen, RefRejected: refRejected,
		ChosenTokens: first(counts), RejectedTokens: second(counts),
	})
}

// NewDPOTrainStep returns an executor that runs one optimizer step of the preference loss on a
// batch in TRL's concatenated layout and returns the loss followed by the [DPOMetricNames]
// scalars, all measured before the update. Call it with (ids, attentionMask, completionMask),
// each [2B, S], or with the cached reference log-probs (refChosen, refRejected [B]) appended.
// Only trainable variables move: the adapter, and the base weights if m.TrainBase.
func NewDPOTrainStep(backend compute.Backend, store *model.Store, m *Model, cfg DPOConfig, opt optimizer.Interface) (*model.Exec, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	return model.NewExec(backend, store, func(scope *model.Scope, inputs []*Node) []*Node {
		if len(inputs) != 3 && len(inputs) != 5 {
			Panicf("llama: DPO train step takes 3 or 5 inputs, got %d", len(inputs))
		}
		g := inputs[0].Graph()
		// Before any variable is read: the Go backend otherwise bakes variables as constants
		// and drops their updates.
		scope.SetTraining(g, true)
		var refChosen, refRejected *Node
		if len(inputs) == 5 {
			refChosen, refRejected = inputs[3], inputs[4]
		}
		loss, metrics := m.DPOBatchLoss(scope, cfg, inputs[0], inputs[1], inputs[2], refChosen, refRejected)
		opt.UpdateGraph(scope, g, loss)
		return append([]*Node{loss}, metrics...)
	})
}

// NewDPOEval returns an executor computing the same outputs as [NewDPOTrainStep] without
// updating anything and without dropout; it reads the variables' current values at every call.
func NewDPOEval(backend compute.Backend, store *model.Store, m *Model, cfg DPOConfig) (*model.Exec, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	me := m.withoutDropout()
	return model.NewExec(backend, store, func(scope *model.Scope, inputs []*Node) []*Node {
		if len(inputs) != 3 && len(inputs) != 5 {
			Panicf("llama: DPO eval takes 3 or 5 inputs, got %d", len(inputs))
		}
		// Marked as training only so variables stay graph parameters (see the package doc).
		scope.SetTraining(inputs[0].Graph(), true)
		var refChosen, refRejected *Node
		if len(inputs) == 5 {
			refChosen, refRejected = inputs[3], inputs[4]
		}
		loss, metrics := me.DPOBatchLoss(scope, cfg, inputs[0], inputs[1], inputs[2], refChosen, refRejected)
		return append([]*Node{loss}, metrics...)
	})
}

// NewSequenceLogProbsExec returns an executor mapping (ids, attentionMask, completionMask), each
// [B, S], to the summed completion log-probs [B] with the adapter on or off — e.g. to cache
// reference log-probs. No dropout; it reads the variables' current values at every call.
func NewSequenceLogProbsExec(backend compute.Backend, store *model.Store, m *Model, adapter Adapter) (*model.Exec, error) {
	me := m.withoutDropout()
	return model.NewExec(backend, store, func(scope *model.Scope, ids, attentionMask, completionMask *Node) *Node {
		scope.SetTraining(ids.Graph(), true) // keep variables as parameters (see the package doc)
		return me.SequenceLogProbs(scope, ids, attentionMask, completionMask, adapter)
	})
}

// NewLogitsExec returns an executor mapping (ids, attentionMask) [B, S] to logits [B, S, V].
// No dropout; it reads the variables' current values at every call.
func NewLogitsExec(backend compute.Backend, store *model.Store, m *Model, adapter Adapter) (*model.Exec, error) {
	me := m.withoutDropout()
	return model.NewExec(backend, store, func(scope *model.Scope, ids, attentionMask *Node) *Node {
		scope.SetTraining(ids.Graph(), true) // keep variables as parameters (see the package doc)
		return me.Logits(scope, ids, attentionMask, adapter)
	})
}

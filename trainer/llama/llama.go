// Package llama is the Llama decoder in GoMLX with LoRA adapters, per-sequence completion
// log-probabilities and the DPO family of preference losses (TRL's definitions).
//
// Variables live in a [model.Store] under the Hugging Face tensor names with "." read as the
// scope separator: "model.layers.0.self_attn.q_proj.weight" is the variable
// "/model/layers/0/self_attn/q_proj/weight", and its LoRA factors are
// ".../q_proj/lora_A/weight" and ".../q_proj/lora_B/weight" (PEFT's names without the
// "base_model.model." prefix). Loading a checkpoint or exporting an adapter is therefore a 1:1
// name map (see [VariablePath], [LoadWeights], [ReadWeights]).
//
// Shapes use B batch, S sequence, H hidden, N query heads, K key/value heads, G = N/K query
// heads per key/value head, D head dimension, I intermediate size, V vocabulary, R LoRA rank.
//
// Two facts about GoMLX's pure-Go backend shape this package:
//   - A graph not marked as training embeds variable values as constants when it is compiled,
//     so a cached executor keeps seeing the old weights after they change, and variable updates
//     made inside it are dropped. Every executor built here marks its graph as training
//     (scope.SetTraining(g, true)) and disables LoRA dropout itself where it must not apply.
//   - Rsqrt and Log1p have no gradient there: RMSNorm divides by Sqrt and −log σ(x) is written
//     as −min(x, 0) + log(1 + e^−|x|).
package llama

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
)

// Adapter switches the LoRA adapter on or off for one forward pass. The reference policy of
// DPO is the same graph with the adapter off.
type Adapter bool

const (
	// AdapterOn adds the LoRA update to the targeted projections (the policy).
	AdapterOn Adapter = true
	// AdapterOff runs the frozen base model only (the reference).
	AdapterOff Adapter = false
)

// Model binds a Llama config (and optionally a LoRA config) to variables in a store. It holds no
// variables itself: its methods are graph-building functions taking the store's root scope.
type Model struct {
	Config llamacfg.Config
	// DType of the weights and of the computation: Float32, or Float64 for gradient checks.
	// Logits and log-probabilities are never computed below float32.
	DType dtypes.DType
	// LoRA is nil for a model without adapters.
	LoRA *LoRAConfig
	// TrainBase makes the base weights trainable (full fine-tuning). Off, the default, every
	// graph marks them frozen, so only the adapter trains.
	TrainBase bool
	// GradientCheckpointing makes a training graph keep only each decoder layer's input for
	// the backward pass and run the layer's forward again, layer by layer, when its gradient
	// is due (see [Model.checkpointLayer]), and compute the output head and its log-softmax a
	// block of rows at a time (see [headTokenLogProbs]): activation memory of one layer and
	// one block of logits instead of all of them, for about one more forward pass of compute.
	// The gradients are the same up to rounding.
	GradientCheckpointing bool
	// masks are the LoRA dropout masks of a training forward pass (see
	// [Model.WithDropoutMasks]); nil until [Model.Logits] draws them in the graph.
	masks map[string]*graph.Node
	// params replaces the values of variables (by path) inside a checkpointed layer.
	params map[string]*graph.Node
	// headRows is the rows per chunk of [headTokenLogProbs]; 0: headChunkElements / V.
	headRows int
}

// New validates cfg and lora (which may be nil) and returns a Model computing in dtype.
func New(cfg llamacfg.Config, dtype dtypes.DType, lora *LoRAConfig) (*Model, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if dtype != dtypes.Float32 && dtype != dtypes.Float64 {
		errs = append(errs, fmt.Errorf("dtype %s is not supported; use float32 or float64", dtype))
	}
	if lora != nil {
		if err := lora.Validate(); err != nil {
			errs = append(errs, err)
		}
		l := *lora
		l.TargetModules = append([]string(nil), lora.TargetModules...)
		lora = &l
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	return &Model{Config: cfg, DType: dtype, LoRA: lora}, nil
}

// withoutDropout returns a copy of m whose adapter applies no dropout, for graphs that are
// marked as training only so that they read current variable values.
func (m *Model) withoutDropout() *Model {
	if m.LoRA == nil || m.LoRA.Dropout == 0 {
		return m
	}
	c := *m
	l := *m.LoRA
	l.Dropout = 0
	c.LoRA = &l
	c.masks = nil
	return &c
}

// VariablePath maps a Hugging Face tensor name to its variable path in the store:
// "model.norm.weight" → "/model/norm/weight".
func VariablePath(hfName string) string {
	return "/" + strings.ReplaceAll(hfName, ".", model.ScopeSeparator)
}

// HFName is the inverse of [VariablePath].
func HFName(path string) string {
	return strings.ReplaceAll(strings.TrimPrefix(path, model.ScopeSeparator), model.ScopeSeparator, ".")
}

// at descends scope through the dot-separated Hugging Face module name ("model.layers.0").
// It uses Scope.At, not In, because one graph runs the model more than once (policy and
// reference) and In refuses to re-enter a scope.
func at(scope *model.Scope, module string) *model.Scope {
	for part := range strings.SplitSeq(module, ".") {
		scope = scope.At("%s", part)
	}
	return scope
}

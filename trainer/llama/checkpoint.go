package llama

import (
	"fmt"
	"strings"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// checkpointLayer runs layer (decoder layer l of [Model.Logits]) on the residual stream x
// [N, H] so that the backward pass keeps none of its activations: only x, which the forward
// pass holds anyway. When the layer's gradient is due, the block below runs the layer again
// from x and differentiates that copy (HF transformers' gradient checkpointing, one layer at a
// time). The layer's trainable variables (its adapter factors with the adapter on; its base
// weights when the base trains) are inputs of the block, and the copy reads them, so the
// copy's gradients are theirs. Dropout masks exist before the layers (see [Model.Logits]), so
// the copy drops what the forward pass dropped, and the gradients are the same as without
// checkpointing. A layer with nothing to train is not wrapped: no gradient passes through it.
//
// GoMLX's own checkpointing (Node.Checkpoint) was not used: it rematerialises the nodes a
// derived gradient reads, while this package's written-out gradients ([gradientsVia]) read
// forward nodes they captured, which would stay alive. Here the derived gradients of the
// forward pass's copy are built but nothing reads them (see [gradientsViaN]), so the backend
// drops them and frees the forward activations at their last forward reader.
//
// The copy starts from SchedulingBarrier(x, dy): it cannot run before the layer's output
// gradient dy exists, which is what makes the memory saving real on a backend that runs an op
// as soon as its inputs are ready, and XLA cannot merge it with the forward pass (the barrier
// is an opaque identity there). Its gradient is GoMLX's Gradient of Σ copy·dy, dy held
// constant, with respect to the copy's input and the layer's variables.
func (m *Model) checkpointLayer(scope *model.Scope, l int, adapter Adapter, x *Node, layer func(m *Model, x *Node) *Node) *Node {
	g := x.Graph()
	prefix := fmt.Sprintf("model.layers.%d.", l)
	var names []string
	if m.TrainBase {
		for _, s := range ExpectedWeights(m.Config) {
			if strings.HasPrefix(s.Name, prefix) {
				names = append(names, s.Name)
			}
		}
	}
	if bool(adapter) && m.LoRA != nil {
		for _, s := range LoRAWeightSpecs(m.Config, *m.LoRA) {
			if strings.HasPrefix(s.Name, prefix) {
				names = append(names, s.Name)
			}
		}
	}
	if len(names) == 0 {
		return layer(m, x)
	}
	xs := []*Node{x}
	paths := make([]string, len(names))
	for i, name := range names {
		v := scope.Store().GetVariable(VariablePath(name))
		if v == nil {
			Panicf("llama: no variable for %s: load the base weights and the adapter first", name)
		}
		paths[i] = v.Path()
		xs = append(xs, v.NodeValue(g))
	}
	// with is m reading the layer's variables from in[1:].
	with := func(in []*Node) *Model {
		c := *m
		c.params = make(map[string]*Node, len(paths))
		for i, p := range paths {
			c.params[p] = in[1+i]
		}
		return &c
	}
	var grads []*Node // of xs, built once, when the first is asked for
	grad := func(dys, in []*Node) []*Node {
		if grads != nil {
			return grads
		}
		if dys[0] == nil { // the layer does not reach the loss
			grads = make([]*Node, len(in))
			for i, v := range in {
				grads[i] = ZerosLike(v)
			}
			return grads
		}
		dy := StopGradient(dys[0])
		x2 := SchedulingBarrier(in[0], dy)
		y2 := layer(with(in), x2)
		grads = Gradient(ReduceAllSum(Mul(y2, dy)), append([]*Node{x2}, in[1:]...)...)
		return grads
	}
	gs := make([]func(dys, in []*Node) *Node, len(xs))
	for i := range xs {
		gs[i] = func(dys, in []*Node) *Node { return grad(dys, in)[i] }
	}
	return gradientsViaN(xs, func(in []*Node) []*Node { return []*Node{layer(with(in), in[0])} }, gs...)[0]
}

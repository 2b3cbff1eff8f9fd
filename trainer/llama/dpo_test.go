package llama

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

// pairBatch is a DPO batch in TRL's concatenated layout: rows [0, n) chosen, [n, 2n) rejected.
type pairBatch struct {
	ids, attn, compl [][]int32
}

func (b pairBatch) args() []any {
	return []any{tensors.FromValue(b.ids), tensors.FromValue(b.attn), tensors.FromValue(b.compl)}
}

// preferenceBatch draws n pairs sharing a random prompt and completion body; the chosen
// completion ends in token x, the rejected one in y. Some rows are right-padded by one.
func preferenceBatch(rng *rand.Rand, n, seqLen, promptLen, vocab int, x, y int32) pairBatch {
	var b pairBatch
	chosen, rejected := pairBatch{}, pairBatch{}
	for range n {
		length := seqLen - rng.IntN(2)
		ids := make([]int32, seqLen)
		attn := make([]int32, seqLen)
		compl := make([]int32, seqLen)
		for t := range length {
			// Body tokens avoid x and y, so only the last token tells the pair apart.
			for ids[t] = int32(1 + rng.IntN(vocab-1)); ids[t] == x || ids[t] == y; ids[t] = int32(1 + rng.IntN(vocab-1)) {
			}
			attn[t] = 1
			if t >= promptLen {
				compl[t] = 1
			}
		}
		c, r := append([]int32(nil), ids...), append([]int32(nil), ids...)
		c[length-1], r[length-1] = x, y
		chosen.ids, chosen.attn, chosen.compl = append(chosen.ids, c), append(chosen.attn, attn), append(chosen.compl, compl)
		rejected.ids, rejected.attn, rejected.compl = append(rejected.ids, r), append(rejected.attn, attn), append(rejected.compl, compl)
	}
	b.ids = append(chosen.ids, rejected.ids...)
	b.attn = append(chosen.attn, rejected.attn...)
	b.compl = append(chosen.compl, rejected.compl...)
	return b
}

func metric(t *testing.T, outs []*tensors.Tensor, name string) float64 {
	t.Helper()
	if name == "loss" {
		return flatFloats(t, outs[0])[0]
	}
	for i, n := range DPOMetricNames {
		if n == name {
			return flatFloats(t, outs[i+1])[0]
		}
	}
	t.Fatalf("no metric %q", name)
	return 0
}

// TestStepZeroIsLn2: with lora_B = 0 the policy is the reference, so z = 0: the sigmoid loss is
// ln 2, IPO (1/2β)², hinge 1, and every reward is 0.
func TestStepZeroIsLn2(t *testing.T) {
	store, m := newTinyModel(t, dtypes.Float32, DefaultLoRAConfig())
	batch := preferenceBatch(rand.New(rand.NewPCG(3, 3)), 3, 8, 3, m.Config.VocabSize, 5, 6)
	for _, tc := range []struct {
		loss LossType
		want float64
	}{
		{LossSigmoid, math.Ln2},
		{LossRobust, math.Ln2},
		{LossIPO, 25},
		{LossHinge, 1},
	} {
		t.Run(string(tc.loss), func(t *testing.T) {
			cfg := DPOConfig{Beta: 0.1, LossType: tc.loss}
			if tc.loss == LossRobust {
				cfg.LabelSmoothing = 0.1 // (0.9 − 0.1)·ln 2 / 0.8 = ln 2
			}
			eval, err := NewDPOEval(backend(t), store, m, cfg)
			if err != nil {
				t.Fatal(err)
			}
			outs := eval.MustCall(batch.args()...)
			if got := metric(t, outs, "loss"); !near(got, tc.want, 1e-6, 1e-7) {
				t.Errorf("loss = %.9g, want %.9g", got, tc.want)
			}
			for _, name := range []string{"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} {
				if got := metric(t, outs, name); got != 0 {
					t.Errorf("%s = %g, want 0", name, got)
				}
			}
			if got := metric(t, outs, "logps/chosen"); !(got < 0) {
				t.Errorf("logps/chosen = %g, want < 0", got)
			}
		})
	}
}

// TestAdapterSwitch: with B = 0 the adapter is exactly a no-op; with B ≠ 0 it changes the logits,
// and the adapter-off graph still gives the base model.
func TestAdapterSwitch(t *testing.T) {
	lora := DefaultLoRAConfig()
	lora.Dropout = 0.5 // must not apply outside training steps
	store, m := newTinyModel(t, dtypes.Float32, lora)
	batch := preferenceBatch(rand.New(rand.NewPCG(4, 4)), 2, 8, 3, m.Config.VocabSize, 5, 6)
	ids, attn := tensors.FromValue(batch.ids), tensors.FromValue(batch.attn)
	on, err := NewLogitsExec(backend(t), store, m, AdapterOn)
	if err != nil {
		t.Fatal(err)
	}
	off, err := NewLogitsExec(backend(t), store, m, AdapterOff)
	if err != nil {
		t.Fatal(err)
	}
	maxDiff := func() float64 {
		a, b := flatFloats(t, on.MustCall1(ids, attn)), flatFloats(t, off.MustCall1(ids, attn))
		d := 0.0
		for i := range a {
			d = math.Max(d, math.Abs(a[i]-b[i]))
		}
		return d
	}
	base := flatFloats(t, off.MustCall1(ids, attn))
	if d := maxDiff(); d != 0 {
		t.Errorf("B = 0: adapter on/off logits differ by %g, want identical", d)
	}
	setLoRAB(t, store, m, 5, 0.1)
	// The same executors must see the new B: they keep variables as graph parameters.
	if d := maxDiff(); d < 1e-3 {
		t.Errorf("B ≠ 0: adapter on/off logits differ by only %g, want a visible change", d)
	}
	again := flatFloats(t, on.MustCall1(ids, attn))
	if d := maxAbsDiff(again, flatFloats(t, on.MustCall1(ids, attn))); d != 0 {
		t.Errorf("adapter-on logits changed between calls by %g: dropout leaked outside training", d)
	}
	if d := maxAbsDiff(base, flatFloats(t, off.MustCall1(ids, attn))); d != 0 {
		t.Errorf("adapter-off logits moved by %g after changing B, want the base model", d)
	}
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// TestLoRAGradients compares the analytic gradient of each DPO loss with respect to lora_A and
// lora_B (B initialised non-zero) with central finite differences, in float64.
func TestLoRAGradients(t *testing.T) {
	lora := LoRAConfig{Rank: 2, Alpha: 4, TargetModules: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}
	store, m := newTinyModel(t, dtypes.Float64, lora)
	setLoRAB(t, store, m, 6, 0.2)
	batch := preferenceBatch(rand.New(rand.NewPCG(7, 7)), 2, 7, 3, m.Config.VocabSize, 5, 6)
	// A spread of adapter tensors: first/last layer, attention and MLP, A and B.
	checked := []string{
		"model.layers.0.self_attn.q_proj.lora_A.weight",
		"model.layers.0.self_attn.k_proj.lora_B.weight",
		"model.layers.0.mlp.down_proj.lora_A.weight",
		"model.layers.1.self_attn.v_proj.lora_B.weight",
		"model.layers.1.self_attn.o_proj.lora_A.weight",
		"model.layers.1.mlp.gate_proj.lora_B.weight",
	}
	cases := []DPOConfig{
		{Beta: 0.5, LossType: LossSigmoid, RPOAlpha: 0.3},
		{Beta: 0.5, LossType: LossRobust, LabelSmoothing: 0.2},
		{Beta: 0.5, LossType: LossIPO},
		{Beta: 0.5, LossType: LossHinge},
	}
	if testing.Short() {
		cases = cases[:1]
	}
	for _, cfg := range cases {
		t.Run(string(cfg.LossType), func(t *testing.T) {
			eval, err := NewDPOEval(backend(t), store, m, cfg)
			if err != nil {
				t.Fatal(err)
			}
			evalLoss := metric(t, eval.MustCall(batch.args()...), "loss")
			checkFiniteDifferences(t, store, batch, checked, evalLoss, func(scope *model.Scope, inputs []*Node) *Node {
				loss, _ := m.DPOBatchLoss(scope, cfg, inputs[0], inputs[1], inputs[2], nil, nil)
				return loss
			})
		})
	}
}

// TestFullWeightGradients checks the base weights' gradients when the base trains (SFT's --full),
// on the completion NLL, against central differences: the gate and up projections and the
// output head (in < out) take their weight gradient through weightGradient's transposed
// product, the others directly; with tied embeddings the head's gradient adds to the embedding
// lookup's.
func TestFullWeightGradients(t *testing.T) {
	for _, tied := range []bool{false, true} {
		t.Run(map[bool]string{false: "untied", true: "tied"}[tied], func(t *testing.T) {
			cfg := tinyConfig()
			cfg.TieWordEmbeddings = tied
			m, err := New(cfg, dtypes.Float64, &LoRAConfig{Rank: 2, Alpha: 4, TargetModules: []string{"q_proj"}})
			if err != nil {
				t.Fatal(err)
			}
			m.TrainBase = true
			store := model.NewStore()
			if err := LoadWeights(store, cfg, dtypes.Float64, randomWeights(cfg, 1, 0.3)); err != nil {
				t.Fatal(err)
			}
			if err := AddLoRA(store, m, 2); err != nil {
				t.Fatal(err)
			}
			checked := []string{
				"model.layers.0.mlp.gate_proj.weight",
				"model.layers.1.mlp.up_proj.weight",
				"model.layers.0.mlp.down_proj.weight",
				"model.layers.0.self_attn.k_proj.weight",
				"model.layers.1.self_attn.q_proj.weight",
				"model.embed_tokens.weight",
			}
			if !tied {
				checked = append(checked, "lm_head.weight")
			}
			batch := preferenceBatch(rand.New(rand.NewPCG(9, 9)), 2, 7, 3, cfg.VocabSize, 5, 6)
			checkFiniteDifferences(t, store, batch, checked, math.NaN(), func(scope *model.Scope, inputs []*Node) *Node {
				return Neg(ReduceAllSum(m.SequenceLogProbs(scope, inputs[0], inputs[1], inputs[2], AdapterOff)))
			})
		})
	}
}

// checkFiniteDifferences compares the analytic gradient of lossFn (a scalar of the batch's ids,
// attention and completion masks) with respect to each named variable with central differences
// at three random entries. wantLoss, unless NaN, is the loss another executor computed.
func checkFiniteDifferences(t *testing.T, store *model.Store, batch pairBatch, checked []string, wantLoss float64,
	lossFn func(scope *model.Scope, inputs []*Node) *Node) {
	t.Helper()
	vars := make([]*model.Variable, len(checked))
	for i, name := range checked {
		if vars[i] = store.GetVariable(VariablePath(name)); vars[i] == nil {
			t.Fatalf("no variable %s", name)
		}
	}
	gradExec, err := model.NewExec(backend(t), store, func(scope *model.Scope, inputs []*Node) []*Node {
		scope.SetTraining(inputs[0].Graph(), true)
		loss := lossFn(scope, inputs)
		nodes := make([]*Node, len(vars))
		for i, v := range vars {
			nodes[i] = v.NodeValue(loss.Graph())
		}
		return append([]*Node{loss}, Gradient(loss, nodes...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	lossExec, err := model.NewExec(backend(t), store, func(scope *model.Scope, inputs []*Node) *Node {
		scope.SetTraining(inputs[0].Graph(), true) // reads the variables' current values
		return lossFn(scope, inputs)
	})
	if err != nil {
		t.Fatal(err)
	}
	outs := gradExec.MustCall(batch.args()...)
	loss := func() float64 { return flatFloats(t, lossExec.MustCall(batch.args()...)[0])[0] }
	if l0 := flatFloats(t, outs[0])[0]; !near(loss(), l0, 1e-12, 0) || (!math.IsNaN(wantLoss) && !near(wantLoss, l0, 1e-12, 0)) {
		t.Fatalf("loss from the gradient graph %g, from the loss graph %g, want %g", l0, loss(), wantLoss)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	const h = 1e-5
	for i, v := range vars {
		grad := flatFloats(t, outs[i+1])
		for range 3 {
			j := rng.IntN(len(grad))
			orig := tensors.MustCopyFlatData[float64](v.MustValue())
			set := func(x float64) {
				d := append([]float64(nil), orig...)
				d[j] = x
				if err := v.SetValue(tensors.FromFlatDataAndDimensions(d, v.Shape().Dimensions...)); err != nil {
					t.Fatal(err)
				}
			}
			set(orig[j] + h)
			up := loss()
			set(orig[j] - h)
			down := loss()
			set(orig[j])
			numeric := (up - down) / (2 * h)
			if !near(grad[j], numeric, 1e-5, 1e-8) {
				t.Errorf("%s[%d]: analytic %.10g, finite difference %.10g", checked[i], j, grad[j], numeric)
			}
		}
	}
}

// TestDPOLearnsSyntheticPreference trains only the adapter with AdamW on pairs whose chosen
// completion ends in token 5 and rejected in token 6, and expects held-out reward accuracy > 0.9.
func TestDPOLearnsSyntheticPreference(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	lora := DefaultLoRAConfig()
	store, m := newTinyModel(t, dtypes.Float32, lora)
	if err := store.SetRNGStateFromSeed(11); err != nil { // dropout mask stream
		t.Fatal(err)
	}
	cfg := DefaultDPOConfig()
	opt := optimizer.Adam().LearningRate(1e-2).WeightDecay(0).Done()
	step, err := NewDPOTrainStep(backend(t), store, m, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	eval, err := NewDPOEval(backend(t), store, m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(12, 12))
	heldOut := preferenceBatch(rng, 16, 10, 4, m.Config.VocabSize, 5, 6)
	before := eval.MustCall(heldOut.args()...)

	baseBefore := tensors.MustCopyFlatData[float32](store.GetVariable(VariablePath("model.layers.0.self_attn.q_proj.weight")).MustValue())
	start := time.Now()
	const steps = 30
	var last []*tensors.Tensor
	for i := range steps {
		last = step.MustCall(preferenceBatch(rng, 8, 10, 4, m.Config.VocabSize, 5, 6).args()...)
		if i%10 == 0 || i == steps-1 {
			t.Logf("step %2d loss %.4f margin %+.4f acc %.2f", i, metric(t, last, "loss"), metric(t, last, "rewards/margins"), metric(t, last, "rewards/accuracies"))
		}
	}
	elapsed := time.Since(start)
	after := eval.MustCall(heldOut.args()...)
	t.Logf("%d steps of 8 pairs × 10 tokens in %v (%.0f ms/step); held-out loss %.4f → %.4f, accuracy %.2f → %.2f",
		steps, elapsed.Round(time.Millisecond), float64(elapsed.Milliseconds())/steps,
		metric(t, before, "loss"), metric(t, after, "loss"), metric(t, before, "rewards/accuracies"), metric(t, after, "rewards/accuracies"))
	if acc := metric(t, after, "rewards/accuracies"); acc <= 0.9 {
		t.Errorf("held-out rewards/accuracies = %.2f after %d steps, want > 0.9", acc, steps)
	}
	if l0, l1 := metric(t, before, "loss"), metric(t, after, "loss"); !(l1 < l0) {
		t.Errorf("held-out loss went %g → %g, want a decrease", l0, l1)
	}
	baseAfter := tensors.MustCopyFlatData[float32](store.GetVariable(VariablePath("model.layers.0.self_attn.q_proj.weight")).MustValue())
	if d := maxAbsDiff(f64(baseBefore), f64(baseAfter)); d != 0 {
		t.Errorf("frozen base weight moved by %g", d)
	}
	for v := range store.IterVariables() {
		if v.Trainable && strings.HasPrefix(v.Path(), "/model/") && !strings.Contains(v.Path(), "/lora_") {
			t.Errorf("base variable %s is trainable", v.Path())
		}
	}
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

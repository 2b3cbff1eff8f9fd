package train

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
)

// fullConfig is fx.config with full fine-tuning in mode.
func (fx *fixture) fullConfig(persona, mode string) Config {
	c := fx.config(persona)
	c.Mode = mode
	c.Full = true
	c.Version = "full-" + mode
	return c
}

// modelTensors reads dir's weights as float32 by name.
func modelTensors(t testing.TB, dir string) map[string][]float32 {
	t.Helper()
	_, f, err := model.LoadModelDir(dir)
	if err != nil {
		t.Fatalf("model directory %s does not load: %v", dir, err)
	}
	out := map[string][]float32{}
	for name, x := range f.Tensors {
		v, err := x.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = v
	}
	return out
}

// TestFullSFTSmoke: 10 steps of full fine-tuning in sft mode write a full model directory
// (no adapter) that model.LoadModelDir and LoadBase accept, in which every weight moved, and
// checkpoints with all weights; --merge_output gets an identical copy.
func TestFullSFTSmoke(t *testing.T) {
	fx := newFixture(t, 20, "p1")
	c := fx.fullConfig("p1", ModeSFT)
	c.MergeOutput = filepath.Join(t.TempDir(), "copy")
	res, err := Train(context.Background(), c, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 10 {
		t.Errorf("steps = %d, want 10", res.Steps)
	}
	dir := c.RunDir()
	for _, f := range []string{"config.json", safetensors.SingleFileName, tokenizer.FileName, ArgsFileName, MetricsFileName, DataStatsFileName,
		filepath.Join(CheckpointsDir, "checkpoint-10", ckptWeightsFile), filepath.Join(CheckpointsDir, "checkpoint-5", ckptOptimizerFile)} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
	for _, f := range []string{peft.WeightsFileName, peft.ConfigFileName, filepath.Join(CheckpointsDir, "checkpoint-10", ckptAdapterFile)} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("a --full run wrote adapter file %s", f)
		}
	}
	if len(res.ModelFiles) != 3 || len(res.AdapterFiles) != 0 {
		t.Errorf("result files: model %v, adapter %v; want 3 model files and no adapter", res.ModelFiles, res.AdapterFiles)
	}
	mc, err := model.LoadConfig(dir)
	if err != nil || mc.TorchDType != "float32" || mc.HiddenSize != fx.cfg.HiddenSize {
		t.Errorf("config.json: %+v (%v), want the base's shape with torch_dtype float32", mc, err)
	}
	if _, err := LoadBase(dir, "", ""); err != nil {
		t.Errorf("LoadBase of the exported model: %v", err)
	}
	trained, initial := modelTensors(t, dir), modelTensors(t, fx.modelDir)
	for name, w0 := range initial {
		if slices.Equal(w0, trained[name]) {
			t.Errorf("%s did not change: every base weight must train with --full", name)
		}
	}
	var args Config
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, ArgsFileName)), &args); err != nil || !args.Full {
		t.Errorf("training_args.json full = %v (%v), want true", args.Full, err)
	}
	for _, f := range []string{safetensors.SingleFileName, "config.json", tokenizer.FileName} {
		if !bytes.Equal(readFile(t, filepath.Join(dir, f)), readFile(t, filepath.Join(c.MergeOutput, f))) {
			t.Errorf("--merge_output %s differs from the run directory's", f)
		}
	}
	// The checkpoint holds exactly the exported weights.
	ck, err := safetensors.ReadFile(filepath.Join(res.Checkpoint, ckptWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range trained {
		v, err := ck.Tensors[name].Float32s()
		if err != nil || !slices.Equal(v, w) {
			t.Errorf("checkpoint weight %s differs from the exported one (%v)", name, err)
		}
	}
}

// TestFullSFTMemorises: from a random initialisation, full fine-tuning on 8 sequences for 60
// steps cuts the completion NLL by more than half.
func TestFullSFTMemorises(t *testing.T) {
	fx := newFixture(t, 8, "p1")
	c := fx.fullConfig("p1", ModeSFT)
	c.BatchSize, c.GradAccum, c.Epochs = 8, 1, 60
	c.LearningRate, c.Scheduler, c.WarmupSteps = 1e-2, SchedulerConstant, 5
	c.SaveSteps, c.LoggingSteps = 0, 1
	res, err := Train(context.Background(), c, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := readMetrics(t, c.RunDir())
	if res.Steps != 60 || len(lines) != 60 {
		t.Fatalf("%d steps, %d metrics lines; want 60", res.Steps, len(lines))
	}
	first, last := lines[0]["nll_loss"], lines[59]["nll_loss"]
	t.Logf("NLL per completion token: step 1 %.4f, step 60 %.4f (%.0f%% lower)", first, last, 100*(1-last/first))
	if !(last < 0.5*first) {
		t.Errorf("NLL fell from %.4f to %.4f: less than 50%%", first, last)
	}
}

// TestFullDPO: dpo with --full uses the frozen initial weights as the reference — computed
// once up front, whether cached on disk or kept in memory, with identical results — and starts
// at loss ln 2.
func TestFullDPO(t *testing.T) {
	fx := newFixture(t, 12, "p1")
	var models [][]byte
	for _, cache := range []bool{true, false} {
		c := fx.fullConfig("p1", ModeDPO)
		c.RefCache = cache
		c.Version += map[bool]string{true: "-cache", false: "-nocache"}[cache]
		res, err := Train(context.Background(), c, testEnv(t))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "computed", false: "memory"}[cache]; res.RefCache != want {
			t.Errorf("ref_cache %v: reference %q, want %q", cache, res.RefCache, want)
		}
		lines := readMetrics(t, c.RunDir())
		if math.Abs(lines[0]["loss"]-math.Ln2) > 1e-4 {
			t.Errorf("first DPO loss %.6f, want ln 2 (policy = reference at the start)", lines[0]["loss"])
		}
		if lines[len(lines)-1]["rewards/margins"] == 0 {
			t.Error("rewards/margins is 0 at the end: the policy did not move away from the reference")
		}
		models = append(models, readFile(t, filepath.Join(c.RunDir(), safetensors.SingleFileName)))
	}
	if onGoBackend(t) && !bytes.Equal(models[0], models[1]) {
		t.Error("dpo --full with the reference cached on disk and kept in memory trained different models")
	}
}

// TestFullWeightDecay: with --full, AdamW's decoupled decay shrinks the projection matrices
// only; the RMSNorm gains and the (tied) embedding keep their values.
func TestFullWeightDecay(t *testing.T) {
	fx := newFixture(t, 4, "p1")
	c := fx.fullConfig("p1", ModeSFT)
	c.WeightDecay = 0.5
	store, _, tv, _, _ := setup(t, c)
	if len(tv.names) != len(model.TensorSpecs(fx.cfg)) {
		t.Fatalf("%d trained tensors, want every base weight (%d)", len(tv.names), len(model.TensorSpecs(fx.cfg)))
	}
	before := make([][]float32, len(tv.params))
	for i, p := range tv.params {
		before[i] = flat32(t, p)
	}
	apply, err := newApplyStep(backend(t), store, c, tv)
	if err != nil {
		t.Fatal(err)
	}
	// Zero accumulated gradient: the Adam term is 0, only the decay moves weights.
	const lr = 0.1
	bc1, bc2 := biasCorrections(c, 1)
	if _, err := apply.Exec(scalarF32(lr), tensors.FromValue(bc1), tensors.FromValue(bc2)); err != nil {
		t.Fatal(err)
	}
	factor := 1 - lr*c.WeightDecay
	for i, name := range tv.names {
		after := flat32(t, tv.params[i])
		matrix := strings.HasSuffix(name, "_proj.weight") || name == "lm_head.weight"
		if matrix != tv.decay[i] {
			t.Errorf("%s: decay %v, want %v", name, tv.decay[i], matrix)
		}
		for j := range after {
			want := float64(before[i][j])
			if matrix {
				want *= factor
			}
			if math.Abs(float64(after[j])-want) > 1e-6*math.Abs(want) {
				t.Fatalf("%s[%d] = %g after one decay step, want %g (decayed %v)", name, j, after[j], want, matrix)
			}
		}
	}
}

// TestFullBadCombos: --full with bf16 is rejected before anything is loaded, and a checkpoint
// of one kind of run does not resume the other kind.
func TestFullBadCombos(t *testing.T) {
	fx := newFixture(t, 6, "p1")
	c := fx.fullConfig("p1", ModeSFT)
	c.DType = DTypeBF16
	if _, err := Train(context.Background(), c, testEnv(t)); err == nil || !strings.Contains(err.Error(), "--full") || !strings.Contains(err.Error(), "--dtype f32") {
		t.Errorf("--full --dtype bf16: got %v, want an error naming --full and --dtype f32", err)
	}
	// The lora_* settings do not matter with --full.
	c = fx.fullConfig("p1", ModeSFT)
	c.LoRAR, c.TargetModules = 0, nil
	if err := c.Validate(); err != nil {
		t.Errorf("--full with unused lora settings: %v", err)
	}

	for _, full := range []bool{false, true} {
		c := fx.config("p1")
		c.Mode = ModeSFT
		c.OutputDir = t.TempDir()
		c.SaveSteps = 1
		c.Full = full
		if _, err := Train(context.Background(), c, testEnv(t)); err != nil {
			t.Fatal(err)
		}
		c.Full = !full
		c.Resume = true
		_, err := Train(context.Background(), c, testEnv(t))
		if err == nil || !strings.Contains(err.Error(), "--full") {
			t.Errorf("resume of a full=%v checkpoint with full=%v: got %v, want an error naming --full", full, !full, err)
		}
	}
}

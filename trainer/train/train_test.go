package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/data"
	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/blob/gcstest"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// readMetrics parses metrics.jsonl into generic maps.
func readMetrics(t testing.TB, dir string) []map[string]float64 {
	t.Helper()
	var out []map[string]float64
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, filepath.Join(dir, MetricsFileName))))
	for sc.Scan() {
		var m map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestTrainSmoke runs 10 optimizer steps in each mode (and with bf16 base weights) and checks
// every output file.
func TestTrainSmoke(t *testing.T) {
	fx := newFixture(t, 20, "p1")
	for _, tc := range []struct{ mode, dtype string }{{ModeDPO, DTypeF32}, {ModeSFT, DTypeF32}, {ModeDPO, DTypeBF16}} {
		mode := tc.mode
		t.Run(mode+"-"+tc.dtype, func(t *testing.T) {
			c := fx.config("p1")
			c.Mode = mode
			c.DType = tc.dtype
			c.Version = "smoke-" + mode + "-" + tc.dtype
			c.MergeOutput = filepath.Join(t.TempDir(), "merged")
			res, err := Train(context.Background(), c, testEnv(t))
			if err != nil {
				t.Fatal(err)
			}
			if res.Steps != 10 {
				t.Errorf("steps = %d, want 10 (20 examples / 2 per batch)", res.Steps)
			}
			dir := c.RunDir()
			for _, f := range []string{peft.ConfigFileName, peft.WeightsFileName, ArgsFileName, MetricsFileName, DataStatsFileName,
				filepath.Join(CheckpointsDir, "checkpoint-10", ckptStateFile), filepath.Join(CheckpointsDir, "checkpoint-5", ckptAdapterFile)} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("missing output: %v", err)
				}
			}
			a, err := peft.Load(dir, fx.cfg)
			if err != nil {
				t.Fatalf("exported adapter does not load: %v", err)
			}
			if a.Config.R != c.LoRAR || len(a.A) != 4*fx.cfg.NumHiddenLayers {
				t.Errorf("adapter r=%d with %d modules, want r=%d and %d", a.Config.R, len(a.A), c.LoRAR, 4*fx.cfg.NumHiddenLayers)
			}
			nonZero := false
			for _, b := range a.B {
				for _, x := range b {
					nonZero = nonZero || x != 0
				}
			}
			if !nonZero {
				t.Error("every lora_B is still zero after training")
			}
			var args Config
			if err := json.Unmarshal(readFile(t, filepath.Join(dir, ArgsFileName)), &args); err != nil || args.Mode != mode || args.LearningRate != c.LearningRate {
				t.Errorf("training_args.json = %+v (%v), want the run's config", args, err)
			}
			var stats DataStats
			if err := json.Unmarshal(readFile(t, filepath.Join(dir, DataStatsFileName)), &stats); err != nil || stats.Examples != 20 || stats.Kept != 20 {
				t.Errorf("data_stats.json = %+v (%v), want 20 examples kept", stats, err)
			}
			if l := stats.Lengths; l.Prompt.Mean <= 0 || l.Chosen.Mean <= 0 || l.Sequence.Max <= 0 || l.Sequence.Max > c.MaxLength {
				t.Errorf("data_stats.json lengths %+v, want positive means and a longest sequence within max_length %d", l, c.MaxLength)
			}
			if mode == ModeDPO {
				_, _, _, exs, pad := setup(t, c)
				if want := len(stepShapes(newPlan(exs, c, pad))); stats.BatchShapes != want {
					t.Errorf("data_stats.json batch_shapes %d, the run's micro-batches have %d", stats.BatchShapes, want)
				}
			}
			lines := readMetrics(t, dir)
			if len(lines) != 10 {
				t.Fatalf("metrics.jsonl has %d lines, want 10", len(lines))
			}
			want := []string{"step", "epoch", "loss", "grad_norm", "lr", "tokens/s", "padding", "nll_loss"}
			if mode == ModeDPO {
				want = append(want, "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected")
			}
			for _, k := range want {
				if _, ok := lines[0][k]; !ok {
					t.Errorf("metrics line has no %q: %v", k, lines[0])
				}
			}
			if mode == ModeDPO && math.Abs(lines[0]["loss"]-math.Ln2) > 1e-5 {
				t.Errorf("first DPO loss = %.6f, want ln 2 (the adapter starts as a no-op)", lines[0]["loss"])
			}
			if lines[9]["step"] != 10 || lines[9]["epoch"] != 1 {
				t.Errorf("last line step %v epoch %v, want 10 and 1", lines[9]["step"], lines[9]["epoch"])
			}
			if _, _, err := model.LoadModelDir(c.MergeOutput); err != nil {
				t.Errorf("merge_output: %v", err)
			}
		})
	}
}

// TestManyBatchShapes: more distinct batch shapes than GoMLX's default executable cache (32)
// must not stop training.
func TestManyBatchShapes(t *testing.T) {
	fx := newFixture(t, 4, "p1")
	var exs []schemas.DPOExample
	for i := range 40 {
		exs = append(exs, schemas.DPOExample{
			ID: fmt.Sprintf("long-%02d", i), PersonaID: "long",
			Prompt:   chatml.Prompt("", "soup"),
			Chosen:   chatml.Completion(strings.Repeat("a", i+1)),
			Rejected: chatml.Completion(strings.Repeat("b", i+1)),
		})
	}
	if _, err := shards.Write(context.Background(), shards.PersonaDir(fx.root, shards.DirDPOFormatted, "long"), exs, 0, schemas.ShardInfo{}); err != nil {
		t.Fatal(err)
	}
	c := fx.config("long")
	c.BatchSize, c.PadTo, c.SaveSteps, c.LoggingSteps = 1, 0, 0, 100
	res, err := Train(context.Background(), c, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 40 {
		t.Errorf("steps = %d, want 40", res.Steps)
	}
}

// stepShapes collects the [rows, sequence] shapes of every micro-batch of every step of p.
func stepShapes(p *plan) map[[2]int]bool {
	shapes := map[[2]int]bool{}
	for s := range p.totalSteps() {
		_, micro, _ := p.step(s)
		for _, b := range micro {
			shapes[[2]int{len(b.Tokens), b.Seq}] = true
		}
	}
	return shapes
}

// TestPlanShapes: data_stats.json's batch_shapes counts the distinct micro-batch shapes of
// the whole run: rows (a smaller last batch) and padded lengths both, in every epoch (over
// 32 batches, the length buckets differ from one epoch's shuffle to the next).
func TestPlanShapes(t *testing.T) {
	var exs []data.Example
	for i := range 150 {
		exs = append(exs, data.Example{ID: fmt.Sprint(i), Prompt: make([]int, 5+(i*37)%101), Chosen: make([]int, 3), Rejected: make([]int, 2+i%3)})
	}
	c := DefaultConfig()
	c.BatchSize, c.GradAccum, c.Epochs = 4, 2, 3 // 37 batches of 4 pairs (8 rows), then one of 2 (4 rows)
	for _, padTo := range []int{1, 16, 64} {
		c.PadTo = padTo
		p := newPlan(exs, c, 0)
		want := stepShapes(p)
		rows := map[int]bool{}
		for s := range want {
			rows[s[0]] = true
		}
		if got := p.shapes(); got != len(want) || len(rows) != 2 {
			t.Errorf("pad_to %d: %d shapes, the steps have %d %v (over %d row counts, want 2)", padTo, got, len(want), want, len(rows))
		}
	}
}

// TestTrainAllParallel: personas trained two at once end with the same adapter bytes as one
// after the other, and a bad parallel count or a non-Go backend with parallel > 1 is refused.
func TestTrainAllParallel(t *testing.T) {
	if !onGoBackend(t) {
		t.Skip("--parallel trains on the pure-Go backend only")
	}
	personas := []string{"p_one", "p_three", "p_two"}
	fx := newFixture(t, 8, personas...)
	c := fx.config("")
	c.SaveSteps = 0
	run := func(dir string, parallel int) []*Result {
		cc := c
		cc.OutputDir = filepath.Join(fx.root, dir)
		env := testEnv(t)
		env.Backend = nil // each run makes its own, as the trainer binary does
		res, err := TrainAll(context.Background(), cc, env, parallel)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	seq, par := run("sequential", 1), run("parallel", 2)
	if len(seq) != len(personas) || len(par) != len(personas) {
		t.Fatalf("results: %d sequential, %d parallel, want %d each", len(seq), len(par), len(personas))
	}
	// One after the other, each persona reuses the previous one's model and compiled programs
	// (see session); the parallel runs build their own, so the byte comparison below also
	// checks that a reused session trains exactly as a fresh one.
	for i := range personas {
		if want := i > 0; seq[i].Reused != want || par[i].Reused {
			t.Errorf("%s: reused %v one after the other (want %v), %v in parallel (want false)", personas[i], seq[i].Reused, want, par[i].Reused)
		}
	}
	for i, p := range personas {
		if filepath.Base(par[i].RunDir) != p+"_v1.0" {
			t.Errorf("parallel result %d is %s, want persona %s (results in persona order)", i, par[i].RunDir, p)
		}
		a := readFile(t, filepath.Join(seq[i].RunDir, "adapter_model.safetensors"))
		b := readFile(t, filepath.Join(par[i].RunDir, "adapter_model.safetensors"))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: the adapter trained in parallel differs from the one trained alone", p)
		}
	}

	if _, err := TrainAll(context.Background(), c, testEnv(t), 0); err == nil || !strings.Contains(err.Error(), "parallel (0)") {
		t.Errorf("parallel 0: err = %v, want a refusal naming it", err)
	}
	cx := c
	cx.Backend = "xla:cuda"
	if _, err := TrainAll(context.Background(), cx, testEnv(t), 2); err == nil || !strings.Contains(err.Error(), "pure-Go") {
		t.Errorf("xla backend with parallel 2: err = %v, want a refusal", err)
	}
}

// TestTrainAllFailureCancelsTheRest runs train-all with two personas at once where the third
// persona's shard is broken: the short persona finishes first and keeps its adapter, the broken
// one fails when it starts, the long one still training is cancelled (no adapter; a checkpoint
// if it got past its first step) and resumes to the end on its own afterwards.
func TestTrainAllFailureCancelsTheRest(t *testing.T) {
	if !onGoBackend(t) {
		t.Skip("--parallel trains on the pure-Go backend only")
	}
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	ctx := context.Background()
	fx := newFixture(t, 6, "p_a_short", "p_b_long")
	long := syntheticExamples("p_b_long", 80)
	if _, err := shards.Write(ctx, shards.PersonaDir(fx.root, shards.DirDPOFormatted, "p_b_long"), long, 0, schemas.ShardInfo{}); err != nil {
		t.Fatal(err)
	}
	bad := shards.PersonaDir(fx.root, shards.DirDPOFormatted, "p_c_bad")
	if _, err := shards.Write(ctx, bad, []schemas.DeadLetter{{Stage: "x", RecordID: "1", Reason: "r"}}, 0, schemas.ShardInfo{}); err != nil {
		t.Fatal(err)
	}
	c := fx.config("")
	c.Epochs, c.SaveSteps = 3, 0
	env := testEnv(t)
	env.Backend = nil // each concurrent run makes its own, as the trainer binary does
	res, err := TrainAll(ctx, c, env, 2)
	if err == nil || !strings.Contains(err.Error(), "persona p_c_bad") || !strings.Contains(err.Error(), "wrong schema") {
		t.Fatalf("err = %v, want the broken persona's schema error", err)
	}
	if len(res) != 1 || filepath.Base(res[0].RunDir) != "p_a_short_v1.0" {
		t.Fatalf("results %v, want only the short persona's", res)
	}
	if _, err := os.Stat(filepath.Join(res[0].RunDir, "adapter_model.safetensors")); err != nil {
		t.Errorf("the finished persona's adapter: %v", err)
	}
	longDir := filepath.Join(fx.outDir, "p_b_long_v1.0")
	if _, err := os.Stat(filepath.Join(longDir, "adapter_model.safetensors")); !os.IsNotExist(err) {
		t.Fatalf("the cancelled persona has an adapter (stat err %v): it should have stopped early", err)
	}
	cl := c
	cl.Persona, cl.Resume = "p_b_long", true
	r, err := Train(ctx, cl, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	// Where it stopped depends on timing (under load it may not have finished a step when
	// the broken persona failed), so only the outcome is checked.
	t.Logf("the cancelled persona resumed from step %d", r.ResumedFrom)
	if _, err := os.Stat(filepath.Join(longDir, "adapter_model.safetensors")); err != nil {
		t.Errorf("after --resume: %v", err)
	}
}

// TestTrainAllStopsAfterAFailure: one persona at a time, a failure (here the model directory
// is missing, which every persona would hit) starts no further persona.
func TestTrainAllStopsAfterAFailure(t *testing.T) {
	fx := newFixture(t, 4, "p_1", "p_2", "p_3")
	c := fx.config("")
	c.ModelDir = filepath.Join(t.TempDir(), "no-model")
	var logs bytes.Buffer
	env := testEnv(t)
	env.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	_, err := TrainAll(context.Background(), c, env, 1)
	if err == nil || !strings.Contains(err.Error(), "persona p_1") {
		t.Fatalf("err = %v, want the first persona's error", err)
	}
	if n := strings.Count(logs.String(), "training persona"); n != 1 {
		t.Errorf("%d personas started, want 1:\n%s", n, logs.String())
	}
}

// TestTrainOnGCS reads the shards from gs:// and writes the run to gs:// (fake-gcs-server
// through STORAGE_EMULATOR_HOST): the uploaded adapter is the same bytes as a run on local
// directories, the files are all there, checkpoints stay in the work directory, and a bucket
// that does not exist fails before training with nothing written.
func TestTrainOnGCS(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t, 6, "p_gcs")
	srv := gcstest.Start(t, "runs")
	root := "gs://runs/run1"
	if _, err := shards.Write(ctx, shards.PersonaDir(root, shards.DirDPOFormatted, "p_gcs"), syntheticExamples("p_gcs", 6), 0, schemas.ShardInfo{}); err != nil {
		t.Fatal(err)
	}
	local, err := Train(ctx, fx.config("p_gcs"), testEnv(t))
	if err != nil {
		t.Fatal(err)
	}

	c := fx.config("p_gcs")
	c.DataRoot, c.OutputDir, c.WorkDir = root, root+"/trained_models", t.TempDir()
	res, err := Train(ctx, c, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := "gs://runs/run1/trained_models/p_gcs_v1.0"; res.RunDir != want || c.RunDir() != want {
		t.Errorf("RunDir %q (config %q), want %q", res.RunDir, c.RunDir(), want)
	}
	if want := filepath.Join(c.WorkDir, "p_gcs_v1.0"); res.LocalDir != want {
		t.Errorf("LocalDir %q, want %q", res.LocalDir, want)
	}
	if _, err := os.Stat(filepath.Join(res.LocalDir, CheckpointsDir)); err != nil {
		t.Errorf("checkpoints in the work directory: %v", err)
	}
	objects, _, err := srv.ListObjectsWithOptions("runs", fakestorage.ListOptions{Prefix: "run1/trained_models/"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objects {
		names = append(names, strings.TrimPrefix(o.Name, "run1/trained_models/p_gcs_v1.0/"))
	}
	slices.Sort(names)
	if want := []string{"adapter_config.json", "adapter_model.safetensors", DataStatsFileName, MetricsFileName, ArgsFileName}; !slices.Equal(names, want) {
		t.Errorf("uploaded %v, want %v", names, want)
	}
	got, err := blob.ReadFile(ctx, res.RunDir+"/adapter_model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if onGoBackend(t) && !bytes.Equal(got, readFile(t, filepath.Join(local.RunDir, "adapter_model.safetensors"))) {
		t.Error("the adapter trained from and to gs:// differs from the one trained on local directories")
	}
	if len(res.AdapterFiles) != 2 || !strings.HasPrefix(res.AdapterFiles[1], "gs://runs/run1/trained_models/p_gcs_v1.0/") {
		t.Errorf("AdapterFiles %v, want the uploaded objects", res.AdapterFiles)
	}

	c.OutputDir, c.WorkDir = "gs://no-such-bucket/x", t.TempDir()
	if _, err := Train(ctx, c, testEnv(t)); err == nil || !strings.Contains(err.Error(), "output_dir") {
		t.Fatalf("missing bucket: err = %v, want an output_dir error", err)
	}
	if entries, _ := os.ReadDir(c.WorkDir); len(entries) != 0 {
		t.Errorf("missing bucket: the work directory has %d entries, want none (nothing trained)", len(entries))
	}
}

// TestPublishReplacesEarlierRun: publishing over an earlier run's objects first deletes its
// weights, so an upload failing midway leaves no object set that looks complete (this run's
// metadata beside the old weights); a later publish completes it with the new weights.
func TestPublishReplacesEarlierRun(t *testing.T) {
	ctx := context.Background()
	srv := gcstest.Start(t, "runs")
	remote := "gs://runs/models/p_v1.0"
	if err := blob.WriteFile(ctx, remote+"/adapter_model.safetensors", []byte("old weights")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{ArgsFileName: "{}", DataStatsFileName: "{}", MetricsFileName: "", "adapter_config.json": "{}", "adapter_model.safetensors": "new weights"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	result := func() *Result {
		return &Result{LocalDir: dir, RunDir: dir, AdapterFiles: []string{filepath.Join(dir, "adapter_config.json"), filepath.Join(dir, "adapter_model.safetensors")}}
	}
	testHookUpload = func(dst string) error {
		if strings.HasSuffix(dst, MetricsFileName) {
			return errors.New("connection reset")
		}
		return nil
	}
	defer func() { testHookUpload = nil }()
	if err := publish(ctx, result(), remote); err == nil || !strings.Contains(err.Error(), "gcloud storage cp") {
		t.Fatalf("failing upload: err = %v, want an error naming the local copy", err)
	}
	if _, err := srv.GetObject("runs", "models/p_v1.0/adapter_model.safetensors"); err == nil {
		t.Error("after a failed upload the earlier run's weights are still there beside this run's metadata")
	}

	testHookUpload = nil
	res := result()
	if err := publish(ctx, res, remote); err != nil {
		t.Fatal(err)
	}
	got, err := blob.ReadFile(ctx, remote+"/adapter_model.safetensors")
	if err != nil || string(got) != "new weights" {
		t.Errorf("weights after publishing: %q, %v; want the new ones", got, err)
	}
	if res.RunDir != remote || res.AdapterFiles[1] != remote+"/adapter_model.safetensors" {
		t.Errorf("RunDir %q, AdapterFiles %v: want the uploaded objects", res.RunDir, res.AdapterFiles)
	}
}

// TestGradientCheckpointingSameResult trains with and without gradient checkpointing and
// compares the weights: a LoRA DPO run with dropout and the reference computed in the
// training graph, and a full-weight SFT run. The recomputed layers run the same ops on the
// same values as the forward pass, but the output head's log-softmax has its backward written
// out (dlogits = dy·(onehot − softmax)) where the plain graph takes GoMLX's derivation, so the
// float32 roundings differ: every tensor must agree within 1e-4 of its largest entry, and some
// must differ (else the flag did not reach the training graph). The float64 comparison of the
// gradients themselves is llama's TestGradientCheckpointing.
func TestGradientCheckpointingSameResult(t *testing.T) {
	fx := newFixture(t, 8, "p1")
	for _, tc := range []struct {
		name, mode string
		full       bool
		weights    string
	}{{"lora_dpo", ModeDPO, false, peft.WeightsFileName}, {"full_sft", ModeSFT, true, safetensors.SingleFileName}} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]*safetensors.File
			for i, on := range []bool{false, true} {
				c := fx.config("p1")
				c.Mode, c.Full, c.RefCache, c.LoRADropout = tc.mode, tc.full, false, 0.1
				c.GradientCheckpointing = on
				c.Version = fmt.Sprintf("%s-%v", tc.name, on)
				if _, err := Train(context.Background(), c, testEnv(t)); err != nil {
					t.Fatal(err)
				}
				f, err := safetensors.ReadFile(filepath.Join(c.RunDir(), tc.weights))
				if err != nil {
					t.Fatal(err)
				}
				got[i] = f
			}
			worst := 0.0
			for _, name := range got[0].Names() {
				a, err := got[0].Tensors[name].Float32s()
				if err != nil {
					t.Fatal(err)
				}
				b, err := got[1].Tensors[name].Float32s()
				if err != nil || len(b) != len(a) {
					t.Fatalf("%s: %v, %d values against %d", name, err, len(b), len(a))
				}
				largest, diff := 0.0, 0.0
				for j := range a {
					largest = max(largest, math.Abs(float64(a[j])))
					diff = max(diff, math.Abs(float64(a[j])-float64(b[j])))
				}
				if diff > 1e-4*largest {
					t.Errorf("%s differs by %g with gradient checkpointing (largest entry %g)", name, diff, largest)
				}
				if largest > 0 {
					worst = max(worst, diff/largest)
				}
			}
			t.Logf("largest difference, relative to its tensor's largest entry: %.2g", worst)
			if worst == 0 {
				t.Errorf("the same bytes with and without gradient checkpointing: the flag did not reach the training graph")
			}
		})
	}
}

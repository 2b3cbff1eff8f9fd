package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"golang.org/x/sync/errgroup"

	"github.com/pantrypilot/recipe-dpo/trainer/data"
	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
)

// ErrNonFinite is returned when the loss or the gradient norm becomes NaN or ±Inf. The run
// stops before the bad update; its checkpoints (the last good state) are kept.
var ErrNonFinite = errors.New("non-finite loss or gradient")

// Env is what a run needs besides its Config. The zero value works: backend from
// Config.Backend, slog's default logger, no progress bar.
type Env struct {
	Backend compute.Backend // nil: NewBackend(Config.Backend)
	Logger  *slog.Logger
	// Progress, if set, receives a progress bar with ETA (pass os.Stderr when it is a terminal);
	// otherwise progress is logged at each logging step.
	Progress io.Writer

	sessions *sessions // set by TrainAll: hands a run's model and programs to the next persona
}

// Result summarises a finished run.
type Result struct {
	RunDir      string // where the results are: a local directory or a gs:// prefix
	LocalDir    string // where the run trained on this machine (RunDir unless that is gs://)
	Steps       int    // optimizer steps completed, including those before a resume
	ResumedFrom int    // step of the checkpoint the run resumed from, 0 for a fresh run
	Last        Metrics
	Stats       DataStats
	// RefCache is "hit", "computed" (and stored) or "off" (dpo without the cache: the
	// reference runs in the training graph; sft); dpo --full without the cache: "memory"
	// (computed from the initial weights at the start, not stored).
	RefCache string
	RefTime  time.Duration // time spent computing reference log-probs (0 on a cache hit)
	// Reused says the run took the model and compiled programs of train-all's previous
	// persona instead of loading and compiling its own (see session).
	Reused       bool
	EpochTimes   []time.Duration
	TrainTime    time.Duration // the optimizer-step loop, excluding loading and the reference pass
	Tokens       int           // real tokens through the policy in this process
	Checkpoint   string        // the newest checkpoint directory
	AdapterFiles []string      // the PEFT adapter's files (LoRA runs), under RunDir
	ModelFiles   []string      // the model directory's files (--full runs): config.json, model.safetensors, tokenizer.json
}

// DataStats is data_stats.json: what truncation and batching did to the data set.
type DataStats struct {
	data.TruncStats
	data.Lengths            // of the kept examples, as tokenized and truncated
	Kept            int     `json:"kept"`
	BatchesPerEpoch int     `json:"batches_per_epoch"`
	StepsPerEpoch   int     `json:"steps_per_epoch"`
	TotalSteps      int     `json:"total_steps"`
	PaddingFraction float64 `json:"padding_fraction"` // padding share of epoch 0's micro-batches
	// BatchShapes is the number of distinct micro-batch shapes over the run, each a program
	// to compile (seconds to minutes apiece on XLA: --pad_to trades it against padding).
	BatchShapes int    `json:"batch_shapes"`
	DataKey     string `json:"data_key"`
}

// Train runs one persona's training as c describes and writes c.RunDir().
func Train(ctx context.Context, c Config, env Env) (*Result, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("persona", c.Persona, "mode", c.Mode)
	backend := env.Backend
	if backend == nil {
		var err error
		if backend, err = NewBackend(c.Backend); err != nil {
			return nil, err
		}
	}
	runDir, err := c.LocalRunDir()
	if err != nil {
		return nil, err
	}
	if blob.IsGCS(c.OutputDir) { // before hours of training, not after
		if err := blob.CheckWritable(ctx, c.OutputDir); err != nil {
			return nil, fmt.Errorf("train: output_dir: %w (check the bucket name and the credentials' storage.objects.create permission)", err)
		}
		log.Info("training locally, uploading at the end", "work_dir", runDir, "output", c.RunDir())
	}
	if err := checkCanCreate(runDir); err != nil { // before the inputs load, not after
		flag := "output_dir"
		if blob.IsGCS(c.OutputDir) {
			flag = "work_dir"
		}
		return nil, fmt.Errorf("train: %s: cannot create %s: %w (choose a directory you can write to)", flag, runDir, err)
	}
	// train-all's previous persona leaves its loaded model and compiled programs (see session).
	sess := env.sessions.take(c)
	ok := false // set just before the successful return
	defer func() {
		switch {
		case sess == nil:
		case ok:
			env.sessions.keep(sess, c)
		default:
			sess.close()
		}
	}()
	var base *baseModel
	if sess != nil {
		base = sess.base
	} else if base, err = loadBase(c); err != nil {
		return nil, err
	}
	raw, err := data.Load(ctx, c.DataRoot, c.Persona)
	if err != nil {
		return nil, err
	}
	exs, trunc := data.Tokenize(raw, base.Tokenizer, c.MaxLength, c.MaxPromptLength)
	if len(exs) == 0 {
		return nil, fmt.Errorf("%w: all %d examples of persona %s were dropped: their prompts leave no room for a completion within max_length %d (raise --max_length or lower --max_prompt_length)",
			data.ErrEmpty, trunc.Examples, c.Persona, c.MaxLength)
	}
	lengths := data.MeasureLengths(exs) // the data set's, before sft drops the rejected completions
	if c.Mode == ModeSFT {
		for i := range exs {
			exs[i].Rejected = exs[i].Chosen // batches then size rows to prompt + chosen
		}
	}
	dkey := dataKey(exs)
	pad := padID(base.Tokenizer)
	p := newPlan(exs, c, pad)
	total := p.totalSteps()
	stats := DataStats{TruncStats: trunc, Lengths: lengths, Kept: len(exs), BatchesPerEpoch: p.batches, StepsPerEpoch: p.stepsPerEpoch,
		TotalSteps: total, PaddingFraction: paddingFraction(p), BatchShapes: p.shapes(), DataKey: dkey}
	log.Info("data", "examples", trunc.Examples, "truncated", trunc.Truncated, "dropped", trunc.Dropped,
		"prompt_tokens", fmt.Sprintf("%.0f", lengths.Prompt.Mean), "completion_tokens", fmt.Sprintf("%.0f", (lengths.Chosen.Mean+lengths.Rejected.Mean)/2),
		"longest", lengths.Sequence.Max, "batches/epoch", p.batches, "steps", total, "padding", fmt.Sprintf("%.3f", stats.PaddingFraction), "shapes", stats.BatchShapes)

	res := &Result{RunDir: runDir, LocalDir: runDir, Stats: stats, RefCache: "off", Reused: sess != nil}
	if sess != nil {
		if err := sess.reset(); err != nil {
			return nil, err
		}
		log.Info("reusing the previous persona's model and compiled programs")
	} else {
		store := model.NewStore()
		m, tv, err := buildModel(store, base, c)
		if err != nil {
			return nil, err
		}
		if sess, err = newSession(c, base, store, m, tv); err != nil {
			return nil, err
		}
		base.Weights = nil // the store holds its own copy
	}
	store, m, tv := sess.store, sess.m, sess.tv

	// Reference log-probs, once per data set, before a checkpoint is restored: with --full the
	// store then still holds the initial weights, which are the reference policy. LoRA runs
	// without the cache compute the reference in the training graph (the adapter off); --full
	// runs cannot (the base moves), so they compute it here and keep it in memory.
	var ref refLogps
	if c.Mode == ModeDPO && (c.RefCache || c.Full) {
		var key string
		if c.RefCache {
			if key, err = refCacheKey(base, dkey, c); err != nil {
				return nil, err
			}
			if ref, err = loadRefCache(c.refCacheDir(), key, exs); err != nil {
				return nil, err
			}
			res.RefCache = "hit"
		}
		if ref == nil {
			t0 := time.Now()
			exec, err := sess.refExec(backend)
			if err != nil {
				return nil, err
			}
			if ref, err = computeRefLogps(exec, exs, c, pad); err != nil {
				return nil, err
			}
			res.RefTime, res.RefCache = time.Since(t0), "memory"
			if c.RefCache {
				res.RefCache = "computed"
				if err := saveRefCache(c.refCacheDir(), key, c, dkey, ref); err != nil {
					return nil, err
				}
			}
		}
		attrs := []any{"cache", res.RefCache, "took", res.RefTime.Round(time.Millisecond)}
		if key != "" {
			attrs = append(attrs, "key", key[:12])
		}
		log.Info("reference log-probs", attrs...)
	}

	// Only now that the model, the data and the reference log-probs are in hand: a run that
	// fails on its inputs leaves no empty run directory behind.
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	start := 0
	var win window
	ckptDir := filepath.Join(runDir, CheckpointsDir)
	if !c.Resume {
		// A fresh run replaces an earlier run's files in this directory. Its weights go first:
		// this run's training_args.json and metrics.jsonl are written from the start, and a
		// run that then failed would leave them beside the old weights, which a reader would
		// take for this run's result. Its checkpoints go too: left, a later --resume would
		// continue the earlier run, and the save_limit pruning (which keeps the highest steps)
		// would delete this run's instead.
		for _, name := range []string{peft.WeightsFileName, safetensors.SingleFileName} {
			if err := os.Remove(filepath.Join(runDir, name)); err == nil {
				log.Info("fresh run: removed the earlier run's weights", "file", filepath.Join(runDir, name))
			} else if !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("train: remove the earlier run's weights: %w", err)
			}
		}
		if steps, err := checkpoints(ckptDir); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		} else if len(steps) > 0 {
			if err := os.RemoveAll(ckptDir); err != nil {
				return nil, fmt.Errorf("train: remove the earlier run's checkpoints: %w", err)
			}
			log.Info("fresh run: removed the earlier run's checkpoints (pass --resume to continue a run instead)",
				"dir", ckptDir, "steps", steps)
		}
	} else {
		steps, err := checkpoints(ckptDir)
		if err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		if len(steps) == 0 {
			log.Info("resume: no checkpoint yet, starting from step 0", "dir", ckptDir)
		} else {
			ckpt := filepath.Join(ckptDir, fmt.Sprintf("%s%d", ckptPrefix, steps[len(steps)-1]))
			st, err := loadCheckpoint(ckpt, tv)
			if err != nil {
				prev := "train without --resume"
				if len(steps) > 1 {
					prev = fmt.Sprintf("delete %s to resume from checkpoint-%d, or train without --resume", ckpt, steps[len(steps)-2])
				}
				return nil, fmt.Errorf("%w (the latest checkpoint cannot be read: %s)", err, prev)
			}
			if d := compatOf(c, dkey).diff(st.Compat); len(d) > 0 {
				return nil, fmt.Errorf("resume from %s: the run's settings changed: %v; start a fresh run (without --resume) or restore them", ckpt, d)
			}
			start, win, res.ResumedFrom, res.Checkpoint = st.Step, st.Window, st.Step, ckpt
			log.Info("resumed", "checkpoint", ckpt, "step", start, "of", total)
		}
	}

	if err := writeJSON(filepath.Join(runDir, ArgsFileName), c); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if err := writeJSON(filepath.Join(runDir, DataStatsFileName), stats); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	mlog, err := openMetrics(filepath.Join(runDir, MetricsFileName), start, c.Resume)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer mlog.Close()

	hostMasks := hostDropout(backend, m)
	micro, err := compiled(&sess.micro, func() (*model.Exec, error) { return newMicroStep(backend, store, m, c, tv, hostMasks) })
	if err != nil {
		return nil, err
	}
	apply, err := compiled(&sess.apply, func() (*model.Exec, error) { return newApplyStep(backend, store, c, tv) })
	if err != nil {
		return nil, err
	}

	sched := newSchedule(c, total)
	names := microMetricNames(c.Mode)
	bar := newProgress(env.Progress, total)
	clock := stepClock{shapes: sess.shapes}
	defer bar.finish()
	saveState := func(step int) error {
		st := ckptState{Step: step, TotalSteps: total, Epoch: step / p.stepsPerEpoch, Mode: c.Mode, Compat: compatOf(c, dkey), Window: win}
		dir, err := saveCheckpoint(ckptDir, tv, st, c.SaveLimit)
		if err != nil {
			return err
		}
		res.Checkpoint = dir
		log.Debug("checkpoint", "dir", dir)
		return nil
	}
	failed := func(step, epoch int, what string, value float64) error {
		last := "none"
		if res.Checkpoint != "" {
			last = res.Checkpoint
		}
		return fmt.Errorf("%w: %s is %g at step %d (epoch %d); the weights were not updated and nothing was exported; the last good checkpoint is %s. Lower --learning_rate, raise --warmup_ratio or check the data, then start again (or --resume from that checkpoint)",
			ErrNonFinite, what, value, step+1, epoch, last)
	}

	trainStart := time.Now()
	epochStart, epochStartStep := time.Now(), start
	var masksAhead []<-chan []any // the next step's dropout masks, being drawn (hostMasks)
	if hostMasks && start < total {
		_, batches, _ := p.step(start)
		masksAhead = drawAhead(m, c.Seed, start, batches)
	}
	for step := start; step < total; step++ {
		if err := ctx.Err(); err != nil {
			if step > res.ResumedFrom && res.Checkpoint != checkpointPath(ckptDir, step) {
				if serr := saveState(step); serr != nil {
					log.Error("checkpoint on cancel", "err", serr)
				}
			}
			return res, fmt.Errorf("train: stopped at step %d: %w (continue with --resume)", step, err)
		}
		t0 := time.Now()
		epoch, batches, weights := p.step(step)
		masks := masksAhead
		if hostMasks && step+1 < total {
			_, next, _ := p.step(step + 1)
			masksAhead = drawAhead(m, c.Seed, step+1, next)
		}
		sums := map[string]float64{}
		realTokens, slots := 0, 0
		for j, b := range batches {
			args := append(batchTensors(b), scalarF32(weights[j]))
			if ref != nil {
				args = append(args, refTensors(ref, b)...)
			}
			if hostMasks {
				args = append(args, <-masks[j]...)
			} else if err := store.SetRNGStateFromSeed(dropoutSeed(c.Seed, step, j)); err != nil {
				return res, err
			}
			outs, err := micro.Exec(args...)
			if err != nil {
				return res, fmt.Errorf("train step %d: %w", step+1, outOfMemory(err, c, b))
			}
			loss := scalar(outs[0])
			if testHookLoss != nil {
				loss = testHookLoss(step, loss)
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return res, failed(step, epoch, "the loss", loss)
			}
			sums["loss"] += weights[j] * loss
			for k, name := range names {
				sums[name] += weights[j] * scalar(outs[k+1])
			}
			realTokens += b.Real
			slots += len(b.Tokens) * b.Seq
		}
		if c.Mode == ModeSFT {
			sums["nll_loss"] = sums["loss"]
			delete(sums, "tokens")
		}
		lr := sched.LR(step)
		bc1, bc2 := biasCorrections(c, step+1)
		outs, err := apply.Exec(scalarF32(lr), tensors.FromValue(bc1), tensors.FromValue(bc2))
		if err != nil {
			return res, fmt.Errorf("train step %d: optimizer: %w", step+1, err)
		}
		norm := scalar(outs[0])
		if math.IsNaN(norm) || math.IsInf(norm, 0) {
			return res, failed(step, epoch, "the gradient norm", norm)
		}
		sums["grad_norm"] = norm
		dt := time.Since(t0)
		clock.add(batches, dt)
		res.Tokens += realTokens
		win.add(sums, realTokens, slots, dt.Seconds(), lr)
		done := step + 1
		res.Steps = done
		if testHookAfterStep != nil {
			testHookAfterStep(done)
		}

		if (c.LoggingSteps > 0 && done%c.LoggingSteps == 0) || done == total {
			line := win.line(done, float64(done)/float64(p.stepsPerEpoch), c.Mode, time.Since(trainStart))
			res.Last = line
			if err := mlog.write(line); err != nil {
				return res, fmt.Errorf("train: metrics: %w", err)
			}
			if env.Progress == nil {
				attrs := []any{"step", done, "of", total, "loss", round4(line.Loss), "grad_norm", round4(line.GradNorm),
					"lr", line.LR, "tokens/s", math.Round(line.TokensPerSec)}
				if line.RewardsAccuracy != nil {
					attrs = append(attrs, "acc", round4(*line.RewardsAccuracy), "margin", round4(*line.RewardsMargins))
				}
				if eta, known := clock.eta(total - done); known && done < total {
					attrs = append(attrs, "eta", eta.Round(time.Second).String())
				}
				log.Info("step", attrs...)
			}
		}
		eta, etaKnown := clock.eta(total - done)
		bar.update(done, eta, etaKnown, sums["loss"], sums["rewards/accuracies"], c.Mode)
		if done%p.stepsPerEpoch == 0 {
			if epochStartStep%p.stepsPerEpoch == 0 { // a whole epoch ran in this process
				res.EpochTimes = append(res.EpochTimes, time.Since(epochStart))
			}
			epochStart, epochStartStep = time.Now(), done
		}
		if c.SaveSteps > 0 && done%c.SaveSteps == 0 && done < total {
			if err := saveState(done); err != nil {
				return res, err
			}
		}
	}
	res.TrainTime = time.Since(trainStart)
	bar.finish()
	if res.Steps == 0 {
		res.Steps = start
	}
	if err := saveState(total); err != nil {
		return res, err
	}
	if c.Full {
		files, err := exportFull(runDir, store, c, base.Config)
		if err != nil {
			return res, err
		}
		res.ModelFiles = files
		if c.MergeOutput != "" { // a second copy of the model directory
			if _, err := exportFull(c.MergeOutput, store, c, base.Config); err != nil {
				return res, fmt.Errorf("merge_output: %w", err)
			}
			log.Info("model copy written", "dir", c.MergeOutput)
		}
	} else {
		files, err := exportAdapter(runDir, store, m, c, base.Config)
		if err != nil {
			return res, err
		}
		res.AdapterFiles = files
		if c.MergeOutput != "" {
			if err := writeMerged(c, store, m); err != nil {
				return res, err
			}
			log.Info("merged model written", "dir", c.MergeOutput)
		}
	}
	if blob.IsGCS(c.OutputDir) {
		if err := publish(ctx, res, c.RunDir()); err != nil {
			return res, err
		}
	}
	log.Info("done", "dir", res.RunDir, "steps", total, "train_time", res.TrainTime.Round(time.Millisecond))
	ok = true
	return res, nil
}

// publish uploads a finished run's files from res.LocalDir to remote (a gs:// run directory):
// training_args.json, data_stats.json, metrics.jsonl and the exported adapter or model, the
// weights last, so that a reader who finds the weights finds a complete run (each object
// appears whole when its upload ends). Weights an earlier run left at remote are deleted
// first: otherwise an upload failing midway would leave this run's metadata beside the old
// run's weights, which a reader would take for a complete run. Checkpoints stay in the local
// work directory. res's RunDir and file lists then name the uploaded objects.
func publish(ctx context.Context, res *Result, remote string) error {
	exported := &res.AdapterFiles
	if len(res.ModelFiles) > 0 {
		exported = &res.ModelFiles
	}
	names := []string{ArgsFileName, DataStatsFileName, MetricsFileName}
	var weights []string
	for _, f := range *exported {
		if strings.HasSuffix(f, ".safetensors") {
			weights = append(weights, filepath.Base(f))
		} else {
			names = append(names, filepath.Base(f))
		}
	}
	for _, name := range weights {
		if err := blob.Remove(ctx, blob.Join(remote, name)); err != nil {
			return fmt.Errorf("train: remove the earlier run's weights: %w (the run is complete in %s; copy it with gcloud storage cp -r)", err, res.LocalDir)
		}
	}
	names = append(names, weights...)
	for _, name := range names {
		dst := blob.Join(remote, name)
		if testHookUpload != nil {
			if err := testHookUpload(dst); err != nil {
				return fmt.Errorf("train: upload %s: %w (the run is complete in %s; copy it with gcloud storage cp -r)", dst, err, res.LocalDir)
			}
		}
		if err := upload(ctx, filepath.Join(res.LocalDir, name), dst); err != nil {
			return fmt.Errorf("train: upload %s: %w (the run is complete in %s; copy it with gcloud storage cp -r)", dst, err, res.LocalDir)
		}
	}
	for i, f := range *exported {
		(*exported)[i] = blob.Join(remote, filepath.Base(f))
	}
	res.RunDir = remote
	return nil
}

// upload streams the local file src to dst (a full model's weights need not fit in memory).
func upload(ctx context.Context, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := blob.Create(ctx, dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

// buildModel puts the base weights into store and returns the model and its trained
// variables: a fresh LoRA adapter (seeded by c.Seed) on the frozen base, or with c.Full the
// base weights themselves, trainable, and no adapter.
func buildModel(store *model.Store, base *baseModel, c Config) (*llama.Model, *trainVars, error) {
	var lora *llama.LoRAConfig
	if !c.Full {
		l := c.loraConfig()
		lora = &l
	}
	m, err := llama.New(base.Config, dtypes.Float32, lora)
	if err != nil {
		return nil, nil, err
	}
	m.TrainBase = c.Full
	m.GradientCheckpointing = c.GradientCheckpointing
	if err := loadBaseWeights(store, base.Config, c, base.Weights); err != nil {
		return nil, nil, err
	}
	if !c.Full {
		if err := llama.AddLoRA(store, m, uint64(c.Seed)); err != nil {
			return nil, nil, err
		}
	}
	tv, err := newTrainVars(store, m)
	if err != nil {
		return nil, nil, err
	}
	return m, tv, nil
}

// TrainAll trains every persona with DPO shards under c.DataRoot, each into its own
// <persona>_v<version> directory; c.Persona is ignored. parallel personas train at once (1:
// one after the other). Each persona's run is the same computation either way, so the
// adapters are the same bytes; running two at once pays on a CPU, where one DPO run of a
// small model keeps only part of the cores busy. With parallel > 1 each concurrent run gets
// its own backend (or shares env.Backend when one is given), so it needs the pure-Go one (an
// XLA client holds most of its device's memory), and runs log their progress instead of
// drawing bars. One at a time, the personas share the loaded base model and the compiled
// programs (see session). At the first failure the runs still going are cancelled; TrainAll
// returns the results of the personas that finished, in persona order, and the error.
func TrainAll(ctx context.Context, c Config, env Env, parallel int) ([]*Result, error) {
	if parallel < 1 {
		return nil, fmt.Errorf("train-all: parallel (%d) must be ≥ 1", parallel)
	}
	personas, err := data.Personas(ctx, c.DataRoot)
	if err != nil {
		return nil, err
	}
	parallel = min(parallel, len(personas))
	if parallel > 1 {
		if name := backendName(c.Backend); name != "go" {
			return nil, fmt.Errorf("train-all: --parallel %d needs the pure-Go CPU backend, not %q (each concurrent run holds its own backend; on an accelerator train one persona at a time)", parallel, name)
		}
		env.Progress = nil // interleaved bars are unreadable; each run logs its steps
	} else {
		if env.Backend == nil {
			if env.Backend, err = NewBackend(c.Backend); err != nil {
				return nil, err
			}
		}
		// One persona after another on one backend: each hands its model and compiled
		// programs to the next.
		env.sessions = &sessions{}
		defer env.sessions.close()
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	results := make([]*Result, len(personas))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, persona := range personas {
		g.Go(func() error {
			if err := gctx.Err(); err != nil { // an earlier persona failed: start no more
				return err
			}
			pc, penv := c, env
			pc.Persona = persona
			if parallel > 1 && penv.Backend == nil {
				b, err := NewBackend(c.Backend)
				if err != nil {
					return err
				}
				defer b.Finalize()
				penv.Backend = b
			}
			log.Info("training persona", "persona", persona, "n", i+1, "of", len(personas))
			r, err := Train(gctx, pc, penv)
			if err != nil {
				return fmt.Errorf("persona %s: %w", persona, err)
			}
			results[i] = r
			return nil
		})
	}
	err = g.Wait()
	var out []*Result
	for _, r := range results {
		if r != nil {
			out = append(out, r)
		}
	}
	return out, err
}

// checkCanCreate reports whether directory dir exists or could be created: its nearest
// existing ancestor must be a directory in which a file can be created (tried with a
// temporary file, removed at once). It leaves nothing behind, so a run can check its output
// directory before loading its inputs and create it only once they have loaded.
func checkCanCreate(dir string) error {
	for p := filepath.Clean(dir); ; {
		fi, err := os.Stat(p)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		case err == nil:
			f, err := os.CreateTemp(p, ".write-check-*")
			if err != nil {
				return err
			}
			f.Close()
			return os.Remove(f.Name())
		case !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR): // ENOTDIR: an ancestor is a file
			return err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return err
		}
		p = parent
	}
}

// backendName is the backend a config string selects ("go", "xla", ...), as NewBackend
// resolves it.
func backendName(config string) string {
	if config == "" {
		config = os.Getenv(compute.ConfigEnvVar)
	}
	name, _, _ := strings.Cut(config, ":")
	if name == "" {
		name = "go"
	}
	return name
}

// paddingFraction is the share of padding in epoch 0's micro-batches.
func paddingFraction(p *plan) float64 {
	realTokens, slots := 0, 0
	for s := 0; s < p.stepsPerEpoch; s++ {
		_, batches, _ := p.step(s)
		for _, b := range batches {
			realTokens += b.Real
			slots += len(b.Tokens) * b.Seq
		}
	}
	if slots == 0 {
		return 0
	}
	return 1 - float64(realTokens)/float64(slots)
}

func checkpointPath(dir string, step int) string {
	return filepath.Join(dir, fmt.Sprintf("%s%d", ckptPrefix, step))
}

// scalar reads a float scalar output.
func scalar(t *tensors.Tensor) float64 {
	switch t.DType() {
	case dtypes.Float64:
		return tensors.ToScalar[float64](t)
	default:
		return float64(tensors.ToScalar[float32](t))
	}
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// Test hooks: nil (false) in production.
var (
	// testInGraphDropout makes the trainer draw LoRA dropout in the graph on the Go backend
	// too, so that tests exercise the path XLA backends take.
	testInGraphDropout bool
	// testHookUpload, if set, runs before each upload of publish; an error fails that upload.
	testHookUpload    func(dst string) error
	testHookAfterStep func(done int)
	testHookLoss      func(step int, loss float64) float64
)

// outOfMemory adds what to change to err when it says the device ran out of memory while
// running batch b (PJRT's RESOURCE_EXHAUSTED, code 8, which go-xla reports as "PJRT error
// (code=8): Out of memory while trying to allocate …"); other errors come back as they are.
// The pure-Go backend has no such error: the Go runtime ends the process.
func outOfMemory(err error, c Config, b data.Batch) error {
	msg := strings.ToLower(err.Error())
	if !strings.Contains(msg, "(code=8)") && !strings.Contains(msg, "resource_exhausted") && !strings.Contains(msg, "out of memory") {
		return err
	}
	var fixes []string
	if !c.GradientCheckpointing {
		fixes = append(fixes, "pass --gradient_checkpointing (activation memory of about one layer instead of all of them)")
	}
	switch {
	case c.BatchSize > 1 && c.BatchSize%2 == 0:
		fixes = append(fixes, fmt.Sprintf("halve --batch_size and double --grad_accum (--batch_size %d --grad_accum %d: the same effective batch)", c.BatchSize/2, c.GradAccum*2))
	case c.BatchSize > 1: // odd: only batches of 1 keep the effective batch
		fixes = append(fixes, fmt.Sprintf("--batch_size 1 --grad_accum %d (the same effective batch)", c.BatchSize*c.GradAccum))
	}
	if c.MaxLength > 0 {
		fixes = append(fixes, fmt.Sprintf("lower --max_length (%d)", c.MaxLength))
	} else {
		fixes = append(fixes, "set --max_length (sequences are not truncated now)")
	}
	return fmt.Errorf("the device ran out of memory on a batch of %d sequences of %d tokens: %s; %w", len(b.Tokens), b.Seq, strings.Join(fixes, ", or "), err)
}

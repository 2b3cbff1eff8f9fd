package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pantrypilot/recipe-dpo/trainer/train"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
)

// trainFlags binds every train.Config field to a flag of the same (JSON) name, defaulting to
// train.DefaultConfig.
func trainFlags(fs *flag.FlagSet, c *train.Config) {
	fs.StringVar(&c.Mode, "mode", c.Mode, "dpo (preference loss) or sft (NLL of the chosen completions)")
	fs.StringVar(&c.Persona, "persona", c.Persona, "persona id (data/dpo_formatted/persona=<id>/); train only")
	fs.StringVar(&c.DataRoot, "data_root", c.DataRoot, "run root holding data/dpo_formatted/ (local directory or gs://bucket/prefix)")
	fs.StringVar(&c.ModelDir, "model_dir", c.ModelDir, "base model: Hugging Face Llama directory (config.json, model.safetensors)")
	fs.StringVar(&c.Tokenizer, "tokenizer", c.Tokenizer, "tokenizer.json (default <model_dir>/tokenizer.json)")
	fs.StringVar(&c.SFTAdapter, "sft_adapter", c.SFTAdapter, "PEFT adapter directory merged into the base model at load (optional)")
	fs.StringVar(&c.OutputDir, "output_dir", c.OutputDir, "parent of <persona>_v<version>/, a local directory or gs://bucket/prefix (default <data_root>/trained_models)")
	fs.StringVar(&c.WorkDir, "work_dir", c.WorkDir, "with a gs:// output_dir: the local directory the run trains in (checkpoints, reference cache) before the upload; --resume needs the same one (default <user cache dir>/recipe-dpo/trainer/<bucket>/<prefix>)")
	fs.StringVar(&c.Version, "version", c.Version, "model version in the output directory name")
	fs.StringVar(&c.MergeOutput, "merge_output", c.MergeOutput, "also write a full model directory with the adapter merged in (train only); with --full, a copy of the trained model directory")
	fs.StringVar(&c.RefCacheDir, "ref_cache_dir", c.RefCacheDir, "reference log-prob cache (default <output_dir>/.ref_cache)")

	fs.Float64Var(&c.LearningRate, "learning_rate", c.LearningRate, "peak AdamW learning rate")
	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "passes over the data")
	fs.IntVar(&c.BatchSize, "batch_size", c.BatchSize, "pairs (dpo) or sequences (sft) per micro-batch")
	fs.IntVar(&c.GradAccum, "grad_accum", c.GradAccum, "micro-batches per optimizer step (4 pairs × 4 = 16 pairs/step)")
	fs.Float64Var(&c.WarmupRatio, "warmup_ratio", c.WarmupRatio, "fraction of the steps warming up linearly from 0")
	fs.IntVar(&c.WarmupSteps, "warmup_steps", c.WarmupSteps, "warm-up steps (overrides --warmup_ratio when > 0)")
	fs.StringVar(&c.Scheduler, "scheduler", c.Scheduler, "decay after warm-up: cosine, linear or constant")
	fs.Float64Var(&c.WeightDecay, "weight_decay", c.WeightDecay, "AdamW decoupled weight decay")
	fs.Float64Var(&c.AdamBeta1, "adam_beta1", c.AdamBeta1, "AdamW β₁")
	fs.Float64Var(&c.AdamBeta2, "adam_beta2", c.AdamBeta2, "AdamW β₂")
	fs.Float64Var(&c.AdamEpsilon, "adam_epsilon", c.AdamEpsilon, "AdamW ε")
	fs.Float64Var(&c.MaxGradNorm, "max_grad_norm", c.MaxGradNorm, "global gradient-norm clip (0 = off)")

	fs.Float64Var(&c.Beta, "beta", c.Beta, "DPO β (KL penalty)")
	fs.StringVar(&c.LossType, "loss_type", c.LossType, "sigmoid, ipo, hinge or robust")
	fs.Float64Var(&c.LabelSmoothing, "label_smoothing", c.LabelSmoothing, "ε for the sigmoid (cDPO) and robust losses")
	fs.Float64Var(&c.RPOAlpha, "rpo_alpha", c.RPOAlpha, "weight of the chosen-completion NLL added to the DPO loss (0 = off)")

	fs.BoolVar(&c.Full, "full", c.Full, "full fine-tuning: train every base weight (embeddings, norms, projections, lm_head) in f32 instead of a LoRA adapter, and write a full model directory (config.json, model.safetensors, tokenizer.json) into the run directory instead of adapter files; the --lora_* flags are ignored, --dtype must be f32, weight decay skips norms and embeddings. Works with --mode sft (the demo's tiny SFT model) and dpo (reference = the frozen initial weights)")
	fs.IntVar(&c.LoRAR, "lora_r", c.LoRAR, "LoRA rank")
	fs.Float64Var(&c.LoRAAlpha, "lora_alpha", c.LoRAAlpha, "LoRA α (the update is scaled by α/r)")
	fs.Float64Var(&c.LoRADropout, "lora_dropout", c.LoRADropout, "dropout on the adapter's input while training")
	fs.Var(&listFlag{vals: &c.TargetModules}, "target_modules", "comma-separated projections to adapt (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)")

	fs.IntVar(&c.MaxLength, "max_length", c.MaxLength, "maximum prompt + completion tokens (0 = no limit)")
	fs.IntVar(&c.MaxPromptLength, "max_prompt_length", c.MaxPromptLength, "prompt tokens kept (from the end) when an example is too long")
	fs.IntVar(&c.PadTo, "pad_to", c.PadTo, "round batch lengths up to a multiple of this (fewer compiled shapes)")

	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of the data order, dropout and LoRA initialisation")
	fs.IntVar(&c.LoggingSteps, "logging_steps", c.LoggingSteps, "optimizer steps per metrics.jsonl line")
	fs.IntVar(&c.SaveSteps, "save_steps", c.SaveSteps, "optimizer steps per checkpoint (0 = only at the end)")
	fs.IntVar(&c.SaveLimit, "save_limit", c.SaveLimit, "checkpoints to keep (0 = all)")
	fs.StringVar(&c.DType, "dtype", c.DType, "base weight dtype: f32, or bf16 (LoRA and AdamW state stay f32)")
	fs.BoolVar(&c.RefCache, "ref_cache", c.RefCache, "dpo: compute reference log-probs once and cache them on disk")
	fs.BoolVar(&c.GradientCheckpointing, "gradient_checkpointing", c.GradientCheckpointing, "keep only each decoder layer's input for the backward pass and run the layer again when its gradient is due, and compute the output head's logits a block of rows at a time: activation memory of about one layer instead of all of them and no [batch, sequence, vocabulary] logits (for a GPU that runs out of memory), about one more forward pass of compute per step, the same results up to float rounding")
	fs.StringVar(&c.Backend, "backend", c.Backend, `GoMLX backend, e.g. "go" or "xla:cuda" (default $GOMLX_BACKEND, else go)`)
	fs.BoolVar(&c.Resume, "resume", c.Resume, "continue from the newest checkpoint in the output directory")
}

// runTrain is `trainer train` (one persona) and `trainer train-all` (every persona).
func runTrain(ctx context.Context, args []string, stderr io.Writer, all bool) error {
	name := "train"
	if all {
		name = "train-all"
	}
	fs, level := newFlagSet(name, stderr)
	c := train.DefaultConfig()
	trainFlags(fs, &c)
	parallel := 1
	if all {
		fs.IntVar(&parallel, "parallel", 1, "personas trained at once, each on its own pure-Go CPU backend (the adapters are the same bytes as one at a time)")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if parallel < 1 {
		return flagError{fmt.Errorf("--parallel (%d) must be ≥ 1", parallel)}
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	if c.OutputDir == "" && c.DataRoot != "" {
		c.OutputDir = blob.Join(c.DataRoot, "trained_models")
	}
	env := train.Env{Logger: log}
	if isTerminal(stderr) {
		env.Progress = stderr
	}
	if all {
		if c.Persona != "" {
			return flagError{fmt.Errorf("--persona is not used by train-all (it trains every persona under --data_root)")}
		}
		if c.MergeOutput != "" {
			return flagError{fmt.Errorf("--merge_output takes one persona: use trainer train")}
		}
		c.Persona = "all" // validated per persona by TrainAll
		results, err := train.TrainAll(ctx, c, env, parallel)
		for _, r := range results {
			log.Info("trained", "dir", r.RunDir, "steps", r.Steps)
		}
		return err
	}
	res, err := train.Train(ctx, c, env)
	if err != nil {
		return err
	}
	what := "adapter written"
	if c.Full {
		what = "model written"
	}
	log.Info(what, "dir", res.RunDir, "steps", res.Steps, "train_time", res.TrainTime.Round(1e6))
	return nil
}

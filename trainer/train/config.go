// Package train is the DPO/SFT training loop of the trainer binary: it reads a persona's
// DPOExample shards, tokenizes and batches them, trains a LoRA adapter on a Llama model (the
// base model optionally merged with an SFT adapter) with AdamW, warm-up and cosine/linear
// decay, global-norm clipping and gradient accumulation, caches the reference policy's
// log-probabilities on disk, checkpoints so that a killed run resumes bit-for-bit, and exports
// the adapter in PEFT format with training_args.json and metrics.jsonl:
//
//	<output_dir>/<persona>_v<version>/
//	  adapter_config.json, adapter_model.safetensors   the trained adapter (peft.Save)
//	  training_args.json                              Config, as run
//	  metrics.jsonl                                   one line per logging step
//	  data_stats.json                                 truncation counts, token lengths, padding fraction
//	  checkpoints/checkpoint-<step>/                  adapter + AdamW state + position
//
// Full fine-tuning (Config.Full, --full) trains every base weight instead — embeddings, RMSNorm
// gains, projections and an untied lm_head — in float32, with no adapter. The demo uses it with
// mode sft to make its tiny SFT model from a random initialisation, where a LoRA adapter alone
// is too weak. The run directory then holds a full Hugging Face model directory in place of the
// adapter files (the other files are as above; checkpoints hold all weights):
//
//	<output_dir>/<persona>_v<version>/
//	  config.json, model.safetensors (float32), tokenizer.json   model.LoadModelDir / LoadBase
//
// The optimizer is written in-graph (see step.go) rather than taken from GoMLX's optimizer
// package: it needs global-norm clipping over the accumulated gradients, PyTorch's AdamW
// update, a host-computed schedule and a finite-gradient guard, none of which
// optimizer.Adam offers together.
package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
)

// Modes of training.
const (
	ModeDPO = "dpo" // preference loss on chosen/rejected pairs, reference = base with the adapter off
	ModeSFT = "sft" // NLL of the chosen completions only: trains an SFT adapter
)

// Learning-rate schedules (after the linear warm-up).
const (
	SchedulerCosine   = "cosine"   // half a cosine from the peak down to 0
	SchedulerLinear   = "linear"   // straight line from the peak down to 0
	SchedulerConstant = "constant" // the peak until the end
)

// DTypes of the base weights.
const (
	DTypeF32  = "f32"
	DTypeBF16 = "bf16"
)

// Config is every hyper-parameter and path of one training run; it is saved as
// training_args.json beside the adapter. Counts are per optimizer step unless said otherwise:
//
//	4 pairs/micro-batch × 4 accumulation = 16 pairs/step; 3 epochs of N pairs = 3·⌈N/16⌉ steps.
//
// JSON names are the command-line flag names.
type Config struct {
	// What to train on and where to write it.
	Mode       string `json:"mode"`                  // dpo | sft
	Persona    string `json:"persona"`               // persona id: data/dpo_formatted/persona=<id>/
	DataRoot   string `json:"data_root"`             // run root (local directory or gs://bucket/prefix)
	ModelDir   string `json:"model_dir"`             // Hugging Face Llama directory: config.json + *.safetensors
	Tokenizer  string `json:"tokenizer,omitempty"`   // tokenizer.json; default <model_dir>/tokenizer.json
	SFTAdapter string `json:"sft_adapter,omitempty"` // PEFT adapter merged into the base at load (optional)
	OutputDir  string `json:"output_dir"`            // parent of <persona>_v<version>/ (trained_models): local or gs://
	Version    string `json:"version"`               // model version in the directory name, "1.0"
	// WorkDir is the local directory a run with a gs:// OutputDir trains in (checkpoints, the
	// reference cache, the files before upload); default <user cache dir>/recipe-dpo/trainer/
	// <bucket>/<prefix>. --resume of such a run needs the same WorkDir.
	WorkDir string `json:"work_dir,omitempty"`
	// MergeOutput, if set, receives a full model directory (config.json, model.safetensors,
	// tokenizer.json) with the trained adapter merged into the base. With Full the run
	// directory already is such a directory; MergeOutput then receives a second copy of it.
	MergeOutput string `json:"merge_output,omitempty"`
	// RefCacheDir holds cached reference log-probs; default <output_dir>/.ref_cache (for a
	// gs:// output_dir, <work root>/.ref_cache).
	RefCacheDir string `json:"ref_cache_dir,omitempty"`

	// Optimisation.
	LearningRate float64 `json:"learning_rate"` // peak AdamW step size (5e-5)
	Epochs       int     `json:"epochs"`        // passes over the data (3)
	BatchSize    int     `json:"batch_size"`    // pairs (dpo) or sequences (sft) per micro-batch (4)
	GradAccum    int     `json:"grad_accum"`    // micro-batches per optimizer step (4): 16 pairs/step
	WarmupRatio  float64 `json:"warmup_ratio"`  // fraction of all steps warming up linearly from 0 (0.1)
	WarmupSteps  int     `json:"warmup_steps"`  // warm-up steps; overrides warmup_ratio when > 0
	Scheduler    string  `json:"scheduler"`     // cosine | linear | constant decay after warm-up
	WeightDecay  float64 `json:"weight_decay"`  // decoupled (AdamW) decay per unit learning rate (0)
	AdamBeta1    float64 `json:"adam_beta1"`    // 0.9
	AdamBeta2    float64 `json:"adam_beta2"`    // 0.999
	AdamEpsilon  float64 `json:"adam_epsilon"`  // 1e-8, added to √v̂
	MaxGradNorm  float64 `json:"max_grad_norm"` // global L2 norm the step's gradient is clipped to (1.0; 0 = off)

	// Preference loss (mode dpo).
	Beta           float64 `json:"beta"`            // β, the KL penalty: rewards are β·log(π/π_ref) (0.1)
	LossType       string  `json:"loss_type"`       // sigmoid | ipo | hinge | robust
	LabelSmoothing float64 `json:"label_smoothing"` // ε of sigmoid (cDPO) and robust (0)
	RPOAlpha       float64 `json:"rpo_alpha"`       // weight of the chosen NLL added to the loss (0 = off)

	// Full trains every base weight (full fine-tuning, float32 only) instead of a LoRA adapter,
	// and exports a full model directory instead of a PEFT adapter; the lora_* settings are
	// then ignored. Weight decay applies to the projection matrices (and an untied lm_head)
	// only, not to the RMSNorm gains nor the token embedding. Valid with both modes; in dpo
	// the reference policy is the frozen initial weights, whose log-probs are computed once
	// before training (cached on disk with ref_cache, else kept in memory). The demo uses it
	// with mode sft.
	Full bool `json:"full"`

	// LoRA adapter.
	LoRAR         int      `json:"lora_r"`         // rank (16)
	LoRAAlpha     float64  `json:"lora_alpha"`     // scale α/r on the update (16)
	LoRADropout   float64  `json:"lora_dropout"`   // dropout on the adapter input while training (0.05)
	TargetModules []string `json:"target_modules"` // projections: q_proj,k_proj,v_proj,o_proj

	// Sequences.
	MaxLength       int `json:"max_length"`        // tokens of prompt + completion (1024; 0 = no limit)
	MaxPromptLength int `json:"max_prompt_length"` // prompt tokens kept (left-truncated) when over max_length (512)
	PadTo           int `json:"pad_to"`            // round batch lengths up to a multiple: fewer compiled shapes (32)

	// Run.
	Seed         int64  `json:"seed"`          // data order (seed, epoch), dropout (seed, step, micro-batch), LoRA init (42)
	LoggingSteps int    `json:"logging_steps"` // optimizer steps per metrics.jsonl line (10)
	SaveSteps    int    `json:"save_steps"`    // optimizer steps per checkpoint (100; 0 = only at the end)
	SaveLimit    int    `json:"save_limit"`    // checkpoints kept (2)
	DType        string `json:"dtype"`         // f32 | bf16: dtype of the base weights (LoRA and AdamW stay f32); full: f32 only
	RefCache     bool   `json:"ref_cache"`     // dpo: compute reference log-probs once, cache them on disk
	Backend      string `json:"backend"`       // GoMLX backend, e.g. "go", "xla:cuda"; default $GOMLX_BACKEND or go
	Resume       bool   `json:"resume"`        // continue from the newest checkpoint in the output directory

	// GradientCheckpointing keeps only each decoder layer's input for the backward pass and
	// runs the layer again when its gradient is due, and computes the output head's logits a
	// block of rows at a time: activation memory of about one layer instead of all of them,
	// and no [batch, sequence, vocabulary] logits, for about one more forward pass of compute
	// per step. The same results up to float rounding.
	GradientCheckpointing bool `json:"gradient_checkpointing"`
}

// DefaultConfig returns the spec's hyper-parameters (seed PIPELINE.md §3.4: lr 5e-5, β 0.1,
// 3 epochs, batch 4 × accumulation 4, LoRA r 16, α 16, dropout 0.05 on q,k,v,o) and
// TRL-style defaults for the rest.
func DefaultConfig() Config {
	return Config{
		Mode:            ModeDPO,
		Version:         "1.0",
		LearningRate:    5e-5,
		Epochs:          3,
		BatchSize:       4,
		GradAccum:       4,
		WarmupRatio:     0.1,
		Scheduler:       SchedulerCosine,
		AdamBeta1:       0.9,
		AdamBeta2:       0.999,
		AdamEpsilon:     1e-8,
		MaxGradNorm:     1.0,
		Beta:            0.1,
		LossType:        string(llama.LossSigmoid),
		LoRAR:           16,
		LoRAAlpha:       16,
		LoRADropout:     0.05,
		TargetModules:   []string{"q_proj", "k_proj", "v_proj", "o_proj"},
		MaxLength:       1024,
		MaxPromptLength: 512,
		PadTo:           32,
		Seed:            42,
		LoggingSteps:    10,
		SaveSteps:       100,
		SaveLimit:       2,
		DType:           DTypeF32,
		RefCache:        true,
	}
}

// Validate checks the config, with messages naming the flag to fix. It reports every problem.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Mode != ModeDPO && c.Mode != ModeSFT {
		add("mode %q is not supported; use dpo or sft", c.Mode)
	}
	if c.Persona == "" {
		add("persona is required")
	} else if strings.ContainsAny(c.Persona, `/\`) || c.Persona == "." || c.Persona == ".." {
		add("persona %q must be a plain id", c.Persona)
	}
	if c.DataRoot == "" {
		add("data_root is required (the run root holding data/dpo_formatted/)")
	}
	if c.ModelDir == "" {
		add("model_dir is required (a directory with config.json and model.safetensors)")
	}
	if c.OutputDir == "" {
		add("output_dir is required")
	}
	if blob.IsGCS(c.WorkDir) {
		add("work_dir %q must be a local directory (checkpoints need a file system)", c.WorkDir)
	}
	if blob.IsGCS(c.RefCacheDir) {
		add("ref_cache_dir %q must be a local directory", c.RefCacheDir)
	}
	if blob.IsGCS(c.MergeOutput) {
		add("merge_output %q must be a local directory", c.MergeOutput)
	} else if c.MergeOutput != "" && c.ModelDir != "" && sameDir(c.MergeOutput, c.ModelDir) {
		add("merge_output %q is the base model_dir: the merged model would overwrite the base it is made from; choose another directory", c.MergeOutput)
	}
	if c.Version == "" || strings.ContainsAny(c.Version, `/\`) {
		add("version %q must be a non-empty plain string such as 1.0", c.Version)
	}
	if !(c.LearningRate > 0) {
		add("learning_rate (%g) must be > 0", c.LearningRate)
	}
	for _, x := range []struct {
		name string
		v    int
	}{{"epochs", c.Epochs}, {"batch_size", c.BatchSize}, {"grad_accum", c.GradAccum}} { // lora_r: see loraConfig below
		if x.v <= 0 {
			add("%s (%d) must be > 0", x.name, x.v)
		}
	}
	for _, x := range []struct {
		name string
		v    int
	}{{"warmup_steps", c.WarmupSteps}, {"max_length", c.MaxLength}, {"max_prompt_length", c.MaxPromptLength},
		{"pad_to", c.PadTo}, {"logging_steps", c.LoggingSteps}, {"save_steps", c.SaveSteps}, {"save_limit", c.SaveLimit}} {
		if x.v < 0 {
			add("%s (%d) must be >= 0", x.name, x.v)
		}
	}
	if c.MaxLength > 0 && c.MaxPromptLength >= c.MaxLength {
		add("max_prompt_length (%d) must be < max_length (%d) to leave room for the completion", c.MaxPromptLength, c.MaxLength)
	}
	if !(c.WarmupRatio >= 0 && c.WarmupRatio < 1) {
		add("warmup_ratio (%g) must be in [0, 1)", c.WarmupRatio)
	}
	if !slices.Contains([]string{SchedulerCosine, SchedulerLinear, SchedulerConstant}, c.Scheduler) {
		add("scheduler %q is not supported; use cosine, linear or constant", c.Scheduler)
	}
	if c.WeightDecay < 0 {
		add("weight_decay (%g) must be >= 0", c.WeightDecay)
	}
	if !(c.AdamBeta1 >= 0 && c.AdamBeta1 < 1) || !(c.AdamBeta2 >= 0 && c.AdamBeta2 < 1) {
		add("adam_beta1 (%g) and adam_beta2 (%g) must be in [0, 1)", c.AdamBeta1, c.AdamBeta2)
	}
	if !(c.AdamEpsilon > 0) {
		add("adam_epsilon (%g) must be > 0", c.AdamEpsilon)
	}
	if c.MaxGradNorm < 0 {
		add("max_grad_norm (%g) must be >= 0 (0 turns clipping off)", c.MaxGradNorm)
	}
	if c.Mode == ModeDPO {
		if err := c.dpoConfig().Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if !c.Full {
		if err := c.loraConfig().Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.DType != DTypeF32 && c.DType != DTypeBF16 {
		add("dtype %q is not supported; use f32 or bf16", c.DType)
	} else if c.Full && c.DType != DTypeF32 {
		add("full fine-tuning (--full) trains and stores every weight in float32: --dtype %s is not supported with it; use --dtype f32 (bf16 base weights are only for LoRA training, where they stay frozen)", c.DType)
	}
	return errors.Join(errs...)
}

// dpoConfig is the loss part of c for the llama package.
func (c Config) dpoConfig() llama.DPOConfig {
	return llama.DPOConfig{Beta: c.Beta, LossType: llama.LossType(c.LossType), LabelSmoothing: c.LabelSmoothing, RPOAlpha: c.RPOAlpha}
}

// loraConfig is the adapter part of c for the llama package.
func (c Config) loraConfig() llama.LoRAConfig {
	return llama.LoRAConfig{Rank: c.LoRAR, Alpha: c.LoRAAlpha, Dropout: c.LoRADropout, TargetModules: slices.Clone(c.TargetModules)}
}

// RunDir is where the run's results go: <output_dir>/<persona>_v<version>, a local directory
// or a gs:// prefix.
func (c Config) RunDir() string {
	return blob.Join(c.OutputDir, c.runName())
}

func (c Config) runName() string { return c.Persona + "_v" + c.Version }

// LocalRunDir is where the run trains and writes its files on this machine: RunDir itself for a
// local output_dir; for a gs:// one, <work root>/<persona>_v<version>, uploaded to RunDir at the
// end.
func (c Config) LocalRunDir() (string, error) {
	if !blob.IsGCS(c.OutputDir) {
		return c.RunDir(), nil
	}
	root, err := c.workRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, c.runName()), nil
}

// workRoot is the local stand-in of a gs:// output_dir: WorkDir, or a directory under the user
// cache directory named after the bucket and prefix (stable, so --resume finds it).
func (c Config) workRoot() (string, error) {
	if c.WorkDir != "" {
		return c.WorkDir, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("output_dir %s: no local work directory: %w (set --work_dir)", c.OutputDir, err)
	}
	rel := strings.Trim(strings.TrimPrefix(c.OutputDir, "gs://"), "/")
	return filepath.Join(cache, "recipe-dpo", "trainer", filepath.FromSlash(rel)), nil
}

// tokenizerPath is the tokenizer.json to use.
func (c Config) tokenizerPath() string {
	if c.Tokenizer != "" {
		return c.Tokenizer
	}
	return filepath.Join(c.ModelDir, "tokenizer.json")
}

// refCacheDir is where reference log-probs are cached.
func (c Config) refCacheDir() string {
	if c.RefCacheDir != "" {
		return c.RefCacheDir
	}
	if blob.IsGCS(c.OutputDir) {
		root, _ := c.workRoot() // Train resolved LocalRunDir, so this does not fail
		return filepath.Join(root, ".ref_cache")
	}
	return filepath.Join(c.OutputDir, ".ref_cache")
}

// Names of the files a run writes into RunDir.
const (
	ArgsFileName      = "training_args.json"
	MetricsFileName   = "metrics.jsonl"
	DataStatsFileName = "data_stats.json"
	CheckpointsDir    = "checkpoints"
)

// writeJSON writes v as indented JSON to path atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic writes b to a temporary file beside path and renames it over path.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// sameDir reports whether local paths a and b name the same directory, comparing their
// absolute cleaned forms and, when both exist, the files themselves (symbolic links).
func sameDir(a, b string) bool {
	if fa, err := os.Stat(a); err == nil {
		if fb, err := os.Stat(b); err == nil {
			return os.SameFile(fa, fb)
		}
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return errA == nil && errB == nil && absA == absB
}

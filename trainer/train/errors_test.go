package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/data"
	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// TestNonFiniteLossStops: an absurd learning rate makes the loss overflow; an injected NaN
// does the same at a known step. Training stops with ErrNonFinite, keeps the last checkpoint and
// exports nothing.
func TestNonFiniteLossStops(t *testing.T) {
	fx := newFixture(t, 20, "p1")
	t.Run("lr 1e30", func(t *testing.T) {
		c := fx.config("p1")
		c.Version = "huge-lr"
		c.LearningRate = 1e30
		c.MaxGradNorm = 0
		c.SaveSteps = 1
		_, err := Train(context.Background(), c, testEnv(t))
		if !errors.Is(err, ErrNonFinite) {
			t.Fatalf("got error %v, want ErrNonFinite", err)
		}
		t.Log(err)
		if _, err := os.Stat(filepath.Join(c.RunDir(), peft.WeightsFileName)); err == nil {
			t.Error("an adapter was exported after a non-finite loss")
		}
	})
	t.Run("injected NaN", func(t *testing.T) {
		c := fx.config("p1")
		c.Version = "nan"
		c.SaveSteps = 2
		testHookLoss = func(step int, loss float64) float64 {
			if step == 4 { // the 5th step
				return math.NaN()
			}
			return loss
		}
		defer func() { testHookLoss = nil }()
		_, err := Train(context.Background(), c, testEnv(t))
		if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "step 5") || !strings.Contains(err.Error(), "checkpoint-4") {
			t.Fatalf("got error %v, want ErrNonFinite at step 5 naming checkpoint-4", err)
		}
		steps, _ := checkpoints(filepath.Join(c.RunDir(), CheckpointsDir))
		if len(steps) == 0 || steps[len(steps)-1] != 4 {
			t.Errorf("checkpoints %v, want the last good one at step 4", steps)
		}
		if n := len(readMetrics(t, c.RunDir())); n != 4 {
			t.Errorf("metrics.jsonl has %d lines, want 4 (the steps before the NaN)", n)
		}
		// The kept checkpoint resumes.
		testHookLoss = nil
		c.Resume = true
		res, err := Train(context.Background(), c, testEnv(t))
		if err != nil || res.ResumedFrom != 4 {
			t.Fatalf("resume after NaN: from %v, %v; want step 4, no error", res, err)
		}
	})
}

// missingBackend is a backend the test binary cannot start: the default (noxla) build has no
// XLA compiled in; xla_test.go names a PJRT plugin that no machine has for -tags xla builds,
// where xla:cuda may well work.
var missingBackend = "xla:cuda"

// TestBadInput: each kind of bad input fails with an error that says what to fix.
func TestBadInput(t *testing.T) {
	fx := newFixture(t, 6, "p1")
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, c *Config)
		is     error
		want   []string
	}{
		{"vocab mismatch", func(t *testing.T, c *Config) {
			small := tinyShape(100)
			c.ModelDir = filepath.Join(t.TempDir(), "small")
			writeModel(t, c.ModelDir, small, 1)
			c.Tokenizer = filepath.Join(fx.modelDir, tokenizer.FileName)
		}, ErrVocabMismatch, []string{"vocab_size 100", "trainer init --vocab"}},
		{"missing tensors", func(t *testing.T, c *Config) {
			c.ModelDir = filepath.Join(t.TempDir(), "broken")
			tensors := model.InitRandom(fx.cfg, 1, safetensors.F32)
			var kept []safetensors.Tensor
			for _, x := range tensors {
				if x.Name != "model.norm.weight" && x.Name != "model.layers.1.mlp.up_proj.weight" {
					kept = append(kept, x)
				}
			}
			if err := os.MkdirAll(c.ModelDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := safetensors.WriteFile(filepath.Join(c.ModelDir, safetensors.SingleFileName), kept, nil); err != nil {
				t.Fatal(err)
			}
			if err := model.WriteConfig(c.ModelDir, fx.cfg); err != nil {
				t.Fatal(err)
			}
			c.Tokenizer = filepath.Join(fx.modelDir, tokenizer.FileName)
		}, nil, []string{"missing", "model.norm.weight", "model.layers.1.mlp.up_proj.weight"}},
		{"wrong shard schema", func(t *testing.T, c *Config) {
			c.Persona = "p_bad"
			dir := shards.PersonaDir(c.DataRoot, shards.DirDPOFormatted, c.Persona)
			if _, err := shards.Write(ctx, dir, []schemas.DeadLetter{{Stage: "x", RecordID: "1", Reason: "r"}}, 0, schemas.ShardInfo{}); err != nil {
				t.Fatal(err)
			}
		}, nil, []string{"wrong schema"}},
		{"no shards", func(t *testing.T, c *Config) { c.Persona = "p_missing" }, data.ErrEmpty, []string{"p_missing"}},
		{"all dropped by max_length", func(t *testing.T, c *Config) {
			c.MaxLength, c.MaxPromptLength = 8, 0
		}, data.ErrEmpty, []string{"--max_length"}},
		{"bad flags", func(t *testing.T, c *Config) {
			c.LearningRate, c.LossType, c.TargetModules = 0, "kto", []string{"qkv"}
		}, nil, []string{"learning_rate (0)", `loss_type "kto"`, `"qkv" is not a Llama projection`}},
		{"gs:// where a local directory is needed", func(t *testing.T, c *Config) {
			c.OutputDir, c.WorkDir, c.MergeOutput, c.RefCacheDir = "gs://b/out", "gs://b/work", "gs://b/merged", "gs://b/ref"
		}, nil, []string{`work_dir "gs://b/work" must be a local directory`, `merge_output "gs://b/merged" must be a local directory`, `ref_cache_dir "gs://b/ref" must be a local directory`}},
		{"missing backend", func(t *testing.T, c *Config) { c.Backend = missingBackend }, nil, []string{missingBackend, "PJRT", "--backend go"}},
		{"merge_output is the base", func(t *testing.T, c *Config) { c.MergeOutput = c.ModelDir + "/" }, nil,
			[]string{"is the base model_dir", "choose another directory"}},
		// Checked before the inputs load: the missing model is not what it reports.
		{"output_dir is a file", func(t *testing.T, c *Config) {
			c.OutputDir = filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(c.OutputDir, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			c.ModelDir = filepath.Join(t.TempDir(), "no-model")
		}, nil, []string{"output_dir: cannot create", "file is not a directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fx.config("p1")
			c.OutputDir = t.TempDir()
			tc.mutate(t, &c)
			env := testEnv(t)
			if c.Backend != "" {
				env.Backend = nil
			}
			_, err := Train(ctx, c, env)
			if err == nil {
				t.Fatal("got nil error")
			}
			t.Log(err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !blob.IsGCS(c.OutputDir) { // nothing half-written: not even an empty run directory
				if left, _ := os.ReadDir(c.OutputDir); len(left) > 0 {
					t.Errorf("the failed run left %s in the output directory", left[0].Name())
				}
			}
		})
	}
}

// TestCheckBase: the launchers' pre-flight check of a model directory gives training's
// messages without reading the weights: a good model passes; a missing tokenizer, a vocab
// mismatch, a directory without weights and an adapter of another model fail.
func TestCheckBase(t *testing.T) {
	fx := newFixture(t, 2, "p1")
	tok := filepath.Join(fx.modelDir, tokenizer.FileName)
	if err := CheckBase(fx.modelDir, "", ""); err != nil {
		t.Fatalf("CheckBase(good model) = %v", err)
	}
	small := filepath.Join(t.TempDir(), "small")
	writeModel(t, small, tinyShape(100), 1)
	noWeights := t.TempDir() // config.json only
	if err := model.WriteConfig(noWeights, fx.cfg); err != nil {
		t.Fatal(err)
	}
	wider := fx.cfg
	wider.HiddenSize, wider.HeadDim = 2*fx.cfg.HiddenSize, 0
	foreign := filepath.Join(t.TempDir(), "adapter")
	if err := peft.Save(foreign, peft.NewRandom(peft.NewConfig(4, 8, 0, "q_proj"), wider, 1), wider); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                   string
		dir, tok, sft, adapter string
		want                   string
	}{
		{"no tokenizer", small, "", "", "", "pass --tokenizer"},
		{"vocab mismatch", small, tok, "", "", "vocab_size 100"},
		{"no weights", noWeights, tok, "", "", "neither model.safetensors nor model.safetensors.index.json"},
		{"foreign sft adapter", fx.modelDir, "", foreign, "", "sft_adapter: load adapter"},
		{"foreign adapter", fx.modelDir, "", "", foreign, "does not fit this base model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var adapters []string
			if tc.adapter != "" {
				adapters = append(adapters, tc.adapter)
			}
			err := CheckBase(tc.dir, tc.tok, tc.sft, adapters...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckBase = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestOutOfMemoryHint: a device out-of-memory error (PJRT's RESOURCE_EXHAUSTED, as go-xla
// words it) names the settings that lower memory, leaving out those already taken, with a
// batch split that keeps the effective batch (also for an odd batch size), and keeps the
// original error; any other error is returned as it is.
func TestOutOfMemoryHint(t *testing.T) {
	oom := errors.New("PJRT error (code=8): Out of memory while trying to allocate 4294967296 bytes.")
	b := data.Batch{Seq: 1024, Tokens: make([][]int32, 8)}
	c := DefaultConfig()
	got := outOfMemory(oom, c, b)
	for _, want := range []string{"8 sequences of 1024 tokens", "--gradient_checkpointing", "--batch_size 2 --grad_accum 8", "--max_length (1024)"} {
		if !strings.Contains(got.Error(), want) {
			t.Errorf("%q does not mention %q", got, want)
		}
	}
	if !errors.Is(got, oom) {
		t.Errorf("the hint does not wrap the device's error")
	}
	c.GradientCheckpointing, c.BatchSize = true, 1
	got = outOfMemory(oom, c, b)
	if strings.Contains(got.Error(), "--gradient_checkpointing") || strings.Contains(got.Error(), "--batch_size") {
		t.Errorf("%q suggests settings the run already has", got)
	}
	c.GradientCheckpointing, c.BatchSize, c.GradAccum, c.MaxLength = false, 3, 2, 0
	got = outOfMemory(oom, c, b)
	for _, want := range []string{"--batch_size 1 --grad_accum 6 (the same effective batch)", "set --max_length"} {
		if !strings.Contains(got.Error(), want) {
			t.Errorf("odd batch, no max_length: %q does not mention %q", got, want)
		}
	}
	other := errors.New("INVALID_ARGUMENT: shapes do not match")
	if got := outOfMemory(other, c, b); got != other {
		t.Errorf("another error came back as %q", got)
	}
}

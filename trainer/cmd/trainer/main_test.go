package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/blob/gcstest"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// writeShards writes n synthetic DPO examples for each persona under root.
func writeShards(t *testing.T, root string, n int, personas ...string) []string {
	t.Helper()
	var texts []string
	for _, p := range personas {
		rows := make([]schemas.DPOExample, n)
		for i := range rows {
			rows[i] = schemas.DPOExample{
				ID: fmt.Sprintf("%s-%d", p, i), PersonaID: p,
				Prompt:   chatml.Prompt("You write recipes.", fmt.Sprintf("Dinner idea %d?", i)),
				Chosen:   chatml.Completion(fmt.Sprintf("Spicy kimchi stew %d with chili.", i)),
				Rejected: chatml.Completion(fmt.Sprintf("Plain bread %d with butter.", i)),
			}
			texts = append(texts, rows[i].Prompt, rows[i].Chosen, rows[i].Rejected)
		}
		if _, err := shards.Write(context.Background(), shards.PersonaDir(root, shards.DirDPOFormatted, p), rows, 0, schemas.ShardInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	return texts
}

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestCommands walks the documented workflow: tokenizer train → init → train (sft, merged) →
// train-all (dpo on the SFT adapter), then the bad inputs.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "run")
	texts := writeShards(t, root, 8, "persona_a", "persona_b")
	corpus := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Join(texts, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	tokPath := filepath.Join(dir, "tokenizer.json")
	if out, err := runCmd(t, "tokenizer", "train", "--input", corpus, "--vocab_size", "300", "--output", tokPath); err != nil {
		t.Fatalf("tokenizer train: %v\n%s", err, out)
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ChatMLSpecials {
		if _, ok := tok.TokenID(s); !ok {
			t.Errorf("trained tokenizer lacks special %s", s)
		}
	}
	modelDir := filepath.Join(dir, "tiny")
	if out, err := runCmd(t, "init", "--output", modelDir, "--vocab", tokPath, "--hidden_size", "32", "--layers", "2",
		"--heads", "4", "--kv_heads", "2", "--intermediate_size", "64", "--max_position_embeddings", "256"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	mc, _, err := model.LoadModelDir(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	if mc.VocabSize != tok.VocabSize() || mc.NumKeyValueHeads != 2 {
		t.Errorf("init wrote vocab_size %d, kv heads %d; want %d, 2", mc.VocabSize, mc.NumKeyValueHeads, tok.VocabSize())
	}
	if _, err := os.Stat(filepath.Join(modelDir, tokenizer.FileName)); err != nil {
		t.Errorf("init did not copy the tokenizer: %v", err)
	}

	common := []string{"--data_root", root, "--model_dir", modelDir, "--epochs", "1", "--batch_size", "2", "--grad_accum", "2",
		"--learning_rate", "1e-3", "--max_length", "64", "--max_prompt_length", "40", "--pad_to", "8", "--lora_r", "4",
		"--log_level", "warn"}
	sftDir := filepath.Join(dir, "sft")
	merged := filepath.Join(dir, "tiny-sft")
	if out, err := runCmd(t, append([]string{"train", "--mode", "sft", "--persona", "persona_a", "--output_dir", sftDir,
		"--merge_output", merged, "--target_modules", "q_proj,v_proj"}, common...)...); err != nil {
		t.Fatalf("train sft: %v\n%s", err, out)
	}
	sftAdapter := filepath.Join(sftDir, "persona_a_v1.0")
	a, err := peft.Load(sftAdapter, mc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(a.Config.TargetModules, ",") != "q_proj,v_proj" {
		t.Errorf("target_modules = %v, want [q_proj v_proj]", a.Config.TargetModules)
	}
	if _, _, err := model.LoadModelDir(merged); err != nil {
		t.Errorf("--merge_output: %v", err)
	}

	// Full fine-tuning (the demo's SFT model): the run directory is a model directory.
	fullDir := filepath.Join(dir, "full")
	if out, err := runCmd(t, append([]string{"train", "--mode", "sft", "--full", "--persona", "persona_a", "--output_dir", fullDir}, common...)...); err != nil {
		t.Fatalf("train sft --full: %v\n%s", err, out)
	}
	fullModel := filepath.Join(fullDir, "persona_a_v1.0")
	if fc, _, err := model.LoadModelDir(fullModel); err != nil || fc.HiddenSize != mc.HiddenSize {
		t.Errorf("--full output is not the model directory of the base's shape: %v", err)
	}
	if _, err := tokenizer.Load(filepath.Join(fullModel, tokenizer.FileName)); err != nil {
		t.Errorf("--full output lacks the tokenizer: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fullModel, peft.WeightsFileName)); err == nil {
		t.Error("--full wrote an adapter")
	}

	if out, err := runCmd(t, append([]string{"train-all", "--sft_adapter", sftAdapter, "--version", "2.0", "--parallel", "2"}, common...)...); err != nil {
		t.Fatalf("train-all: %v\n%s", err, out)
	}
	for _, p := range []string{"persona_a", "persona_b"} {
		if _, err := peft.Load(filepath.Join(root, "trained_models", p+"_v2.0"), mc); err != nil {
			t.Errorf("train-all output for %s: %v", p, err)
		}
	}

	// A run root on GCS (fake-gcs-server): shards read from it, the adapter uploaded to its
	// trained_models/ by default, checkpoints in --work_dir.
	gcstest.Start(t, "runs")
	writeShards(t, "gs://runs/r1", 8, "persona_a")
	work := filepath.Join(dir, "work")
	gcsArgs := []string{"train", "--persona", "persona_a", "--data_root", "gs://runs/r1", "--work_dir", work}
	if out, err := runCmd(t, append(gcsArgs, common[2:]...)...); err != nil {
		t.Fatalf("train on gs://: %v\n%s", err, out)
	}
	for _, f := range []string{peft.ConfigFileName, peft.WeightsFileName} {
		if _, err := blob.ReadFile(context.Background(), "gs://runs/r1/trained_models/persona_a_v1.0/"+f); err != nil {
			t.Errorf("train on gs://: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "persona_a_v1.0", "checkpoints")); err != nil {
		t.Errorf("train on gs://: checkpoints in --work_dir: %v", err)
	}

	// Bad inputs: an error naming the fix, and the right exit status.
	small := filepath.Join(dir, "small")
	if out, err := runCmd(t, "init", "--output", small, "--vocab_size", "100", "--hidden_size", "32", "--heads", "4"); err != nil {
		t.Fatalf("init small: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"vocab mismatch", []string{"train", "--persona", "persona_a", "--data_root", root, "--model_dir", small, "--tokenizer", tokPath}, 1, "vocab_size 100"},
		{"init vocab too small", []string{"init", "--output", filepath.Join(dir, "x"), "--vocab", tokPath, "--vocab_size", "10"}, 2, "smaller than the tokenizer"},
		{"init over a model", []string{"init", "--output", small, "--vocab_size", "100"}, 2, "already holds a model (config.json)"},
		{"tokenizer over a tokenizer", []string{"tokenizer", "train", "--input", tokPath, "--output", filepath.Dir(tokPath)}, 2, tokPath + " exists"},
		{"unknown persona", []string{"train", "--persona", "nobody", "--data_root", root, "--model_dir", modelDir}, 1, "no training examples"},
		{"bad flag value", []string{"train", "--persona", "persona_a", "--data_root", root, "--model_dir", modelDir, "--loss_type", "kto"}, 1, `loss_type "kto"`},
		{"unknown flag", []string{"train", "--lr", "1"}, 2, "flag provided but not defined"},
		{"train-all parallel 0", []string{"train-all", "--data_root", root, "--model_dir", modelDir, "--parallel", "0"}, 2, "--parallel (0) must be ≥ 1"},
		{"unknown command", []string{"fly"}, 1, `unknown command "fly"`},
		{"missing backend", []string{"train", "--persona", "persona_a", "--data_root", root, "--model_dir", modelDir, "--backend", "xla:cuda"}, 1, "PJRT"},
		{"full with bf16", []string{"train", "--persona", "persona_a", "--data_root", root, "--model_dir", modelDir, "--full", "--dtype", "bf16"}, 1, "--dtype f32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCmd(t, tc.args...)
			if err == nil {
				t.Fatalf("got no error; output:\n%s", out)
			}
			if got := exitCode(err); got != tc.code {
				t.Errorf("exit code %d, want %d (%v)", got, tc.code, err)
			}
			if !strings.Contains(err.Error()+out, tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	if out, err := runCmd(t, "init", "--output", small, "--vocab_size", "100", "--hidden_size", "32", "--heads", "4", "--seed", "2", "--force"); err != nil {
		t.Errorf("init --force over a model: %v\n%s", err, out)
	}
	// A tokenizer already in --output is the model's vocabulary: the model must fit it, and
	// gets its size and end-of-turn id.
	tokDir := filepath.Join(dir, "tokdir")
	readFile := func(t *testing.T, path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := os.MkdirAll(tokDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tokDir, "tokenizer.json"), readFile(t, tokPath), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "init", "--output", tokDir, "--vocab_size", "10")
	if got := exitCode(err); got != 2 || !strings.Contains(err.Error()+out, "smaller than the tokenizer") {
		t.Errorf("init --vocab_size 10 beside a larger tokenizer.json: exit %d, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(tokDir, "config.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused init wrote config.json (%v)", err)
	}
	if out, err := runCmd(t, "init", "--output", tokDir, "--hidden_size", "32", "--heads", "4"); err != nil {
		t.Fatalf("init beside a tokenizer.json: %v\n%s", err, out)
	}
	mc, cerr := model.LoadConfig(tokDir)
	if cerr != nil {
		t.Fatal(cerr)
	}
	if imEnd, _ := tok.TokenID("<|im_end|>"); mc.VocabSize != tok.VocabSize() || fmt.Sprint(mc.EOSTokenID) != fmt.Sprint(imEnd) {
		t.Errorf("init beside a tokenizer.json: vocab_size %d, eos %v; want the tokenizer's %d and <|im_end|> = %d", mc.VocabSize, mc.EOSTokenID, tok.VocabSize(), imEnd)
	}
	if !bytes.Equal(readFile(t, filepath.Join(tokDir, "tokenizer.json")), readFile(t, tokPath)) {
		t.Errorf("init changed the tokenizer.json it found")
	}
	if _, err := runCmd(t, "train", "-h"); !errors.Is(err, flagErrHelp()) {
		t.Errorf("train -h returned %v, want flag.ErrHelp", err)
	}
}

func flagErrHelp() error { return flag.ErrHelp }

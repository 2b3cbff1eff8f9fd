package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
)

// ChatMLSpecials are the special tokens `tokenizer train` adds: ChatML's turn markers (the
// prompts and completions of the DPO shards use them), Llama 3's sequence delimiters and a
// padding token.
var ChatMLSpecials = []string{"<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<|pad|>"}

// runInit is `trainer init`: a random-initialised model directory of a given shape.
func runInit(_ context.Context, args []string, stderr io.Writer) error {
	fs, level := newFlagSet("init", stderr)
	out := fs.String("output", "", "model directory to write (config.json, model.safetensors, tokenizer.json)")
	vocab := fs.String("vocab", "", "tokenizer.json: sets vocab_size and bos/eos ids, and is copied into the model directory (default: the tokenizer.json already in --output, if there is one)")
	vocabSize := fs.Int("vocab_size", 0, "vocabulary size (default: the --vocab tokenizer's; must be ≥ it)")
	hidden := fs.Int("hidden_size", 64, "hidden size")
	layers := fs.Int("layers", 2, "decoder layers")
	heads := fs.Int("heads", 4, "attention heads")
	kvHeads := fs.Int("kv_heads", 0, "key/value heads (default --heads; must divide it)")
	headDim := fs.Int("head_dim", 0, "head dimension (default hidden_size / heads)")
	inter := fs.Int("intermediate_size", 0, "MLP size (default 8/3 · hidden_size rounded up to a multiple of 32)")
	maxPos := fs.Int("max_position_embeddings", 2048, "maximum sequence length")
	theta := fs.Float64("rope_theta", 500000, "RoPE base")
	eps := fs.Float64("rms_norm_eps", 1e-5, "RMSNorm ε")
	tie := fs.Bool("tie_word_embeddings", true, "share the embedding and the LM head")
	seed := fs.Int64("seed", 1, "initialisation seed")
	dtype := fs.String("dtype", "f32", "stored dtype: f32 or bf16")
	force := fs.Bool("force", false, "overwrite the model files of an existing model directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	if *out == "" {
		return flagError{errors.New("--output is required")}
	}
	if !*force { // a random model must not silently replace a trained one
		for _, name := range []string{model.ConfigFileName, safetensors.SingleFileName, safetensors.IndexFileName} {
			if _, err := os.Stat(filepath.Join(*out, name)); err == nil {
				return flagError{fmt.Errorf("--output %s already holds a model (%s): choose another directory, or pass --force to overwrite it", *out, name)}
			}
		}
	}
	var tok *tokenizer.Tokenizer
	// A tokenizer already in the directory (a model's being replaced with --force, or one
	// trained there first) is the model's vocabulary, as if --vocab named it: the model written
	// beside it must fit it, and it is not copied onto itself.
	inDir := false
	if existing := filepath.Join(*out, tokenizer.FileName); *vocab == "" {
		if _, err := os.Stat(existing); err == nil {
			*vocab, inDir = existing, true
		}
	}
	if *vocab != "" {
		if tok, err = tokenizer.Load(*vocab); err != nil {
			if inDir {
				return fmt.Errorf("--output's %s (used as --vocab): %w", tokenizer.FileName, err)
			}
			return fmt.Errorf("--vocab: %w", err)
		}
		switch {
		case *vocabSize == 0:
			*vocabSize = tok.VocabSize()
		case *vocabSize < tok.VocabSize():
			return flagError{fmt.Errorf("--vocab_size %d is smaller than the tokenizer's %d ids (%s): raise it or leave it out", *vocabSize, tok.VocabSize(), *vocab)}
		}
		if inDir {
			log.Info("using the tokenizer already in --output", "path", *vocab, "vocab_size", tok.VocabSize())
		}
	}
	if *vocabSize <= 0 {
		return flagError{errors.New("give --vocab tokenizer.json or --vocab_size")}
	}
	if *kvHeads == 0 {
		*kvHeads = *heads
	}
	if *inter == 0 {
		*inter = (8**hidden/3 + 31) / 32 * 32
	}
	st := safetensors.F32
	switch *dtype {
	case "f32":
	case "bf16":
		st = safetensors.BF16
	default:
		return flagError{fmt.Errorf("--dtype %q: use f32 or bf16", *dtype)}
	}
	c := model.Config{
		ModelType: "llama", HiddenSize: *hidden, NumHiddenLayers: *layers, NumAttentionHeads: *heads,
		NumKeyValueHeads: *kvHeads, HeadDim: *headDim, IntermediateSize: *inter, VocabSize: *vocabSize,
		RMSNormEps: *eps, RopeTheta: *theta, TieWordEmbeddings: *tie, MaxPositionEmbeddings: *maxPos,
	}
	if tok != nil {
		if id, ok := tok.BOS(); ok {
			c.BOSTokenID = &id
		}
		if id, ok := tok.TokenID("<|im_end|>"); ok {
			c.EOSTokenID = id // chat turns end here: generation stops on it
		} else if id, ok := tok.EOS(); ok {
			c.EOSTokenID = id
		}
	}
	if err := c.Validate(); err != nil {
		return flagError{fmt.Errorf("model shape: %w", err)}
	}
	if err := model.WriteModelDir(*out, c, model.InitRandom(c, *seed, st)); err != nil {
		return err
	}
	if tok != nil && !inDir {
		b, err := os.ReadFile(*vocab)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, tokenizer.FileName), b, 0o644); err != nil {
			return err
		}
	}
	log.Info("model written", "dir", *out, "parameters", model.NumParameters(c), "vocab_size", c.VocabSize,
		"hidden_size", c.HiddenSize, "layers", c.NumHiddenLayers)
	return nil
}

// runTokenizerTrain is `trainer tokenizer train`.
func runTokenizerTrain(_ context.Context, args []string, stderr io.Writer) error {
	fs, level := newFlagSet("tokenizer train", stderr)
	var inputs []string
	fs.Var(&listFlag{vals: &inputs}, "input", "text files to learn from, comma-separated or repeated (.jsonl/.json: their string values)")
	size := fs.Int("vocab_size", 4096, "vocabulary size: 256 bytes + merges + specials")
	out := fs.String("output", "tokenizer.json", "tokenizer.json to write (a directory gets tokenizer.json inside)")
	sep := fs.Bool("separate_spaces", false, "learn no token that starts with a space, so a word has the same tokens after a space and after punctuation (longer sequences; helps tiny models copy words into JSON)")
	force := fs.Bool("force", false, "overwrite an existing tokenizer.json")
	if err := parse(fs, args); err != nil {
		return err
	}
	target := tokenizer.SavePath(*out)
	if _, err := os.Stat(target); err == nil && !*force { // e.g. a real model's, next to its weights
		return flagError{fmt.Errorf("--output: %s exists: choose another path, or pass --force to overwrite it", target)}
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	if len(inputs) == 0 {
		return flagError{errors.New("--input is required")}
	}
	var opts []tokenizer.TrainOption
	if *sep {
		opts = append(opts, tokenizer.SeparateSpaces())
	}
	tok, err := tokenizer.TrainFromFiles(inputs, *size, ChatMLSpecials, opts...)
	if err != nil {
		return err
	}
	if err := tok.Save(*out); err != nil {
		return err
	}
	log.Info("tokenizer written", "path", *out, "vocab_size", tok.VocabSize(), "merges", tok.NumMerges())
	return nil
}

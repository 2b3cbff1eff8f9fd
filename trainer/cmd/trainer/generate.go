package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/generate"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
)

// runGenerate answers one or more requests with a model (plus optional SFT and DPO
// adapters), as ChatML with the persona-neutral system prompt unless --system says otherwise.
// Requests come from --prompt, or one per line from --prompts_file ("-" = stdin); answers are
// printed as JSON lines.
func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, level := newFlagSet("generate", stderr)
	var m generate.Model
	fs.StringVar(&m.ModelDir, "model_dir", "", "Llama model directory (config.json, model.safetensors, tokenizer.json)")
	fs.StringVar(&m.Tokenizer, "tokenizer", "", "tokenizer.json (default <model_dir>/tokenizer.json)")
	fs.StringVar(&m.SFTAdapter, "sft_adapter", "", "PEFT SFT adapter merged into the model (optional)")
	fs.StringVar(&m.Adapter, "adapter", "", "PEFT adapter merged on top, e.g. trained_models/<persona>_v1.0 (optional)")
	fs.StringVar(&m.Backend, "backend", "", "GoMLX backend (default $GOMLX_BACKEND, else go)")
	prompt := fs.String("prompt", "", "the user request")
	file := fs.String("prompts_file", "", "file with one user request per line (- for stdin)")
	system := fs.String("system", chatml.NeutralSystem, "system prompt (empty for none)")
	maxNew := fs.Int("max_new_tokens", 256, "tokens to generate at most")
	temp := fs.Float64("temperature", 0, "sampling temperature (0 = greedy)")
	topP := fs.Float64("top_p", 1, "nucleus sampling top_p")
	presence := fs.Float64("presence_penalty", 0, "OpenAI presence penalty in [-2, 2] on tokens the completion already holds (0 = off)")
	frequency := fs.Float64("frequency_penalty", 0, "OpenAI frequency penalty in [-2, 2], per earlier occurrence (0 = off)")
	seed := fs.Int64("seed", 42, "sampling seed")
	batch := fs.Int("batch_size", generate.DefaultMaxBatch, "prompts decoded together")
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := newLogger(stderr, *level); err != nil {
		return err
	}
	opts := generate.Options{MaxNewTokens: *maxNew, Temperature: *temp, TopP: *topP,
		PresencePenalty: *presence, FrequencyPenalty: *frequency, Seed: *seed, StopStrings: []string{schemas.ChatMLEnd}}
	if err := opts.Validate(); err != nil {
		return flagError{err}
	}
	var requests []string
	switch {
	case *prompt != "" && *file != "":
		return flagError{fmt.Errorf("give --prompt or --prompts_file, not both")}
	case *prompt != "":
		requests = []string{*prompt}
	case *file != "":
		r := io.Reader(os.Stdin)
		if *file != "-" {
			f, err := os.Open(*file)
			if err != nil {
				return fmt.Errorf("--prompts_file: %w", err)
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				requests = append(requests, line)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("--prompts_file: %w", err)
		}
		if len(requests) == 0 {
			return fmt.Errorf("--prompts_file %s holds no requests: give one per line", *file)
		}
	default:
		return flagError{fmt.Errorf("give --prompt or --prompts_file")}
	}
	g, _, err := generate.Load(m)
	if err != nil {
		return err
	}
	g.MaxBatch = *batch
	prompts := make([]string, len(requests))
	for i, r := range requests {
		prompts[i] = chatml.Prompt(*system, r)
	}
	res, err := g.Generate(ctx, prompts, opts)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for i, r := range res {
		_, perr := schemas.ParseRecipe(r.Text)
		if err := enc.Encode(map[string]any{"request": requests[i], "text": r.Text, "stop_reason": r.StopReason,
			"prompt_tokens": r.PromptTokens, "completion_tokens": r.CompletionTokens, "recipe_ok": perr == nil}); err != nil {
			return err
		}
	}
	return nil
}

package main

import "flag"

// options are the demo's flags. The defaults are sized for the 15-minute budget on a 2-core
// machine; the spec's counts (500 prompts per persona) stay available by flag.
type options struct {
	Out, Cache, Bin string
	Seed            int64
	Only            string // run only this phase: sft, prepare, dpo, evaluate

	// SFT model.
	SFTExamples int // corpus examples per persona
	// Corpus compliance when the system prompt does not state the persona's constraints.
	WeakCompliance, NeutralCompliance float64
	Vocab                             int
	SeparateSpaces                    bool
	Hidden, Layers                    int
	Heads, KVHeads                    int
	Intermediate                      int
	SFTEpochs                         int
	SFTLearningRate                   float64
	SFTBatch, SFTMaxLen               int

	// Data preparation, DPO and evaluation.
	Count        int // prompts per persona
	TempA, TempB float64
	MaxTokens    int
	Replicas     int // model copies prepare and evaluate decode on
	DPOParallel  int // personas the DPO phase trains at once
	// Decoding penalties of prepare and evaluate (OpenAI semantics, both models alike).
	PresencePenalty, FrequencyPenalty float64
	DPOEpochs                         int
	DPOLearningRate                   float64
	DPOBeta                           float64
	DPOLossType                       string
	LabelSmoothing                    float64
	RPOAlpha                          float64
	LoRAR                             int
	TargetModules                     string
	Personas                          string
	TestCases                         string
}

func registerFlags(fs *flag.FlagSet) *options {
	o := &options{}
	fs.StringVar(&o.Out, "out", "out/demo", "where every stage writes (the run root)")
	fs.StringVar(&o.Cache, "cache", ".cache/demo", "where the tiny SFT model is cached between runs")
	fs.StringVar(&o.Bin, "bin", "bin", "directory of the trainer, prepare and evaluate binaries (make builds them)")
	fs.Int64Var(&o.Seed, "seed", 42, "seed of every stage: the same seed gives the same numbers on the same machine")
	fs.StringVar(&o.Only, "only", "", "run one phase only: sft, prepare, dpo or evaluate")

	fs.IntVar(&o.SFTExamples, "sft_examples", 250, "synthetic SFT examples per persona")
	fs.Float64Var(&o.WeakCompliance, "sft_weak_compliance", 0.2, "share of corpus recipes under the weak system prompt that leave forbidden pantry items out")
	fs.Float64Var(&o.NeutralCompliance, "sft_neutral_compliance", 0.2, "the same under the neutral system prompt (the evaluation's)")
	fs.IntVar(&o.Vocab, "vocab_size", 1024, "tokenizer vocabulary of the tiny model")
	fs.BoolVar(&o.SeparateSpaces, "separate_spaces", false, "train the tokenizer with no space-led tokens (trainer tokenizer train --separate_spaces)")
	fs.IntVar(&o.Hidden, "hidden_size", 128, "tiny model hidden size")
	fs.IntVar(&o.Layers, "layers", 4, "tiny model layers")
	fs.IntVar(&o.Heads, "heads", 4, "tiny model attention heads")
	fs.IntVar(&o.KVHeads, "kv_heads", 2, "tiny model key/value heads")
	fs.IntVar(&o.Intermediate, "intermediate_size", 384, "tiny model MLP size")
	fs.IntVar(&o.SFTEpochs, "sft_epochs", 6, "SFT epochs over the corpus")
	fs.Float64Var(&o.SFTLearningRate, "sft_learning_rate", 2e-3, "SFT peak learning rate (full-weight training from scratch)")
	fs.IntVar(&o.SFTBatch, "sft_batch_size", 16, "SFT sequences per step")
	fs.IntVar(&o.SFTMaxLen, "sft_max_length", 512, "SFT max tokens per sequence")

	fs.IntVar(&o.Count, "count", 300, "prompts per persona for the data-preparation job (spec: 500)")
	fs.Float64Var(&o.TempA, "temperature_a", 0.7, "variant A sampling temperature in prepare (spec: 0.7)")
	fs.Float64Var(&o.TempB, "temperature_b", 0.9, "variant B sampling temperature in prepare (spec: 0.9)")
	fs.IntVar(&o.MaxTokens, "max_tokens", 200, "max tokens per generated recipe")
	fs.IntVar(&o.Replicas, "generator_replicas", 2, "copies of the model prepare and evaluate decode on at once (one per CPU core)")
	// Greedy decoding makes the tiny model list one ingredient again and again; the largest
	// presence penalty the OpenAI API allows stops that without breaking the JSON (a
	// frequency penalty of 1 already does: it grows with every "name" key).
	fs.Float64Var(&o.PresencePenalty, "presence_penalty", 2, "presence penalty of every generation in prepare and evaluate, both models alike (OpenAI semantics, [-2, 2])")
	fs.Float64Var(&o.FrequencyPenalty, "frequency_penalty", 0, "frequency penalty of every generation in prepare and evaluate (OpenAI semantics, [-2, 2])")
	fs.IntVar(&o.DPOParallel, "dpo_parallel", 2, "personas the DPO phase trains at once (trainer train-all --parallel; one run keeps ~1.6 of 2 cores busy)")
	fs.IntVar(&o.DPOEpochs, "dpo_epochs", 5, "DPO epochs (spec: 3; the tiny model has few pairs)")
	fs.Float64Var(&o.DPOLearningRate, "dpo_learning_rate", 1e-3, "DPO learning rate (tiny model; spec for 3B: 5e-5)")
	fs.Float64Var(&o.DPOBeta, "dpo_beta", 0.1, "DPO β")
	fs.StringVar(&o.DPOLossType, "dpo_loss_type", "sigmoid", "DPO loss: sigmoid, ipo, hinge or robust (trainer --loss_type)")
	fs.Float64Var(&o.LabelSmoothing, "dpo_label_smoothing", 0.1, "ε of the sigmoid (cDPO) and robust losses: the share of preference labels assumed flipped (trainer --label_smoothing)")
	fs.Float64Var(&o.RPOAlpha, "rpo_alpha", 0.5, "weight of the chosen-completion NLL added to the DPO loss (trainer --rpo_alpha)")
	fs.IntVar(&o.LoRAR, "lora_r", 16, "LoRA rank for DPO")
	fs.StringVar(&o.TargetModules, "target_modules", "q_proj,k_proj,v_proj,o_proj", "projections the DPO adapters train")
	fs.StringVar(&o.Personas, "persona", "", "comma-separated persona ids (default: all six)")
	fs.StringVar(&o.TestCases, "test_cases", "", "evaluation test cases YAML (default: the built-in 120)")
	return o
}

package prepare

import (
	"context"
	"fmt"
	"os"

	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/localgen"
	"github.com/pantrypilot/recipe-dpo/transforms/progress"
)

// newGenerator builds the variant generator on a worker. The API key comes from the
// worker's environment, never from the serialized config.
func newGenerator(_ context.Context, c GeneratorConfig, cacheRoot string, noCache bool) (llm.Generator, *llm.Caller, error) {
	switch c.Kind {
	case GeneratorOpenAI:
		caller := llm.Shared(callerGenerator, c.Limits, llm.RunCache(cacheRoot, noCache))
		return llm.NewOpenAIGenerator(c.URL, os.Getenv(EnvGeneratorKey), caller), caller, nil
	case GeneratorLocal:
		m, err := localgen.Shared(localgen.Config{ModelDir: c.ModelDir, Tokenizer: c.Tokenizer, SFTAdapter: c.SFTAdapter,
			Backend: c.Backend, Replicas: c.Replicas})
		if err != nil {
			return nil, nil, err
		}
		caller := llm.Shared(callerGeneratorLocal, c.Limits, llm.RunCache(cacheRoot, noCache))
		return localgen.NewGenerator(m, caller), caller, nil
	}
	return nil, nil, fmt.Errorf("unknown generator %q", c.Kind)
}

// newJudge builds the LLM preference judge on a worker; GROQ_API_KEY comes from the
// worker's environment.
func newJudge(_ context.Context, c LabelerConfig, cacheRoot string, noCache bool) (llm.PairJudge, *llm.Caller, error) {
	key := os.Getenv(EnvGroqKey)
	if key == "" {
		return nil, nil, fmt.Errorf("--labeler=groq needs %s in the environment (of the workers, on Dataflow)", EnvGroqKey)
	}
	caller := llm.Shared(callerJudge, c.Limits, llm.RunCache(cacheRoot, noCache))
	return llm.NewOpenAIPairJudge(c.URL, key, c.Model, caller), caller, nil
}

// Names of the job's shared LLM callers (llm.Shared): the counters ProgressTasks reads.
const (
	callerGenerator      = "generator"
	callerGeneratorLocal = "generator-local"
	callerJudge          = "judge"
)

// ProgressTasks are the job's counted phases for transforms/progress: both variants of every
// prompt, then (with the LLM labeller) the judged pairs, whose number is only known once
// generation ends. They count calls made in this process, so they only move on the local
// runner, whose workers run in the launcher.
func ProgressTasks(c Config) []progress.Task {
	gen := callerGenerator
	if c.Generator.Kind == GeneratorLocal {
		gen = callerGeneratorLocal
	}
	tasks := []progress.Task{{Name: "prepare: generate", Total: int64(2 * len(c.Prompts)), Done: func() int64 { return llm.SharedDone(gen) }}}
	if c.Labeler.Kind == LabelerGroq {
		tasks = append(tasks, progress.Task{Name: "prepare: label", Done: func() int64 { return llm.SharedDone(callerJudge) }})
	}
	return tasks
}

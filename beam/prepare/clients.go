package prepare

import (
	"context"
	"fmt"
	"os"

	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/localgen"
)

// newGenerator builds the variant generator on a worker. The API key comes from the
// worker's environment, never from the serialized config.
func newGenerator(_ context.Context, c GeneratorConfig, cacheRoot string, noCache bool) (llm.Generator, *llm.Caller, error) {
	switch c.Kind {
	case GeneratorOpenAI:
		caller := llm.Shared("generator", c.Limits, llm.RunCache(cacheRoot, noCache))
		return llm.NewOpenAIGenerator(c.URL, os.Getenv(EnvGeneratorKey), caller), caller, nil
	case GeneratorLocal:
		m, err := localgen.Shared(localgen.Config{ModelDir: c.ModelDir, Tokenizer: c.Tokenizer, SFTAdapter: c.SFTAdapter, Backend: c.Backend})
		if err != nil {
			return nil, nil, err
		}
		caller := llm.Shared("generator-local", c.Limits, llm.RunCache(cacheRoot, noCache))
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
	caller := llm.Shared("judge", c.Limits, llm.RunCache(cacheRoot, noCache))
	return llm.NewOpenAIPairJudge(c.URL, key, c.Model, caller), caller, nil
}

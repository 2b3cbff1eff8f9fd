package evaluate

import (
	"context"
	"fmt"
	"os"
	"sync"

	"google.golang.org/genai"

	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
	"github.com/pantrypilot/recipe-dpo/transforms/localgen"
	"github.com/pantrypilot/recipe-dpo/transforms/progress"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// EnvGeneratorKey is the generator endpoint's API key (as in the prepare job).
const EnvGeneratorKey = "GENERATOR_API_KEY"

// models answers a request with the SFT baseline or a persona's DPO model.
type models struct {
	cfg    GeneratorConfig
	caller *llm.Caller
	remote llm.Generator // openai

	mu    sync.Mutex
	local map[string]llm.Generator // "" = SFT, else persona id
}

func newModels(c GeneratorConfig, cache llm.Cache) (*models, error) {
	m := &models{cfg: c, local: map[string]llm.Generator{}}
	switch c.Kind {
	case GeneratorOpenAI:
		m.caller = llm.Shared(callerGenerator, c.Limits, cache)
		m.remote = llm.NewOpenAIGenerator(c.URL, os.Getenv(EnvGeneratorKey), m.caller)
	case GeneratorLocal:
		m.caller = llm.Shared(callerGeneratorLocal, c.Limits, cache)
	default:
		return nil, fmt.Errorf("unknown generator %q", c.Kind)
	}
	return m, nil
}

// generator returns the generator and model name for the SFT baseline (persona "") or a
// persona's DPO model. Local models are loaded once per process, on first use.
func (m *models) generator(persona string) (llm.Generator, string, error) {
	if m.remote != nil {
		if persona == "" {
			return m.remote, m.cfg.SFTModel, nil
		}
		return m.remote, m.cfg.DPOModel(persona), nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if g, ok := m.local[persona]; ok {
		return g, persona, nil
	}
	lc := localgen.Config{ModelDir: m.cfg.ModelDir, Tokenizer: m.cfg.Tokenizer, SFTAdapter: m.cfg.SFTAdapter, Backend: m.cfg.Backend,
		Replicas: m.cfg.Replicas}
	if persona != "" {
		lc.Adapter = m.cfg.AdapterDir(persona)
	}
	lm, err := localgen.Shared(lc)
	if err != nil {
		return nil, "", err
	}
	g := localgen.NewGenerator(lm, m.caller)
	m.local[persona] = g
	return g, persona, nil
}

// newJudge builds the evaluation judge on a worker; the Gemini API key comes from the
// worker's environment.
func newJudge(ctx context.Context, c JudgeConfig, cache llm.Cache) (evaljudge.Judge, string, error) {
	switch c.Kind {
	case JudgeRules:
		return evaljudge.NewRulesJudge(rules.New()), JudgeRules, nil
	case JudgeGemini:
		gc := evaljudge.GeminiConfig{Backend: genai.BackendGeminiAPI, Model: c.Model, BaseURL: c.BaseURL,
			APIKey: evaljudge.APIKeyFromEnv(os.Getenv)}
		if c.Backend == "vertex" {
			gc = evaljudge.GeminiConfig{Backend: genai.BackendVertexAI, Project: c.Project, Location: c.Location, Model: c.Model, BaseURL: c.BaseURL}
		}
		j, err := evaljudge.NewGeminiJudge(ctx, gc, llm.Shared(callerJudge, c.Limits, cache))
		if err != nil {
			return nil, "", err
		}
		return j, j.Model(), nil
	}
	return nil, "", fmt.Errorf("unknown judge %q", c.Kind)
}

// Names of the job's shared LLM callers (llm.Shared): the counters ProgressTasks reads.
const (
	callerGenerator      = "eval-generator"
	callerGeneratorLocal = "eval-generator-local"
	callerJudge          = "eval-judge"
)

// ProgressTasks are the job's counted phases for transforms/progress: an SFT and a DPO answer
// per case, then (with Gemini) a judgement per case in each order. They count calls made in
// this process, so they only move on the local runner, whose workers run in the launcher.
func ProgressTasks(c Config) []progress.Task {
	gen := callerGenerator
	if c.Generator.Kind == GeneratorLocal {
		gen = callerGeneratorLocal
	}
	tasks := []progress.Task{{Name: "evaluate: generate", Total: int64(2 * len(c.Cases)), Done: func() int64 { return llm.SharedDone(gen) }}}
	if c.Judge.Kind == JudgeGemini {
		tasks = append(tasks, progress.Task{Name: "evaluate: judge", Total: int64(2 * len(c.Cases)), Done: func() int64 { return llm.SharedDone(callerJudge) }})
	}
	return tasks
}

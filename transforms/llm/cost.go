package llm

import "strings"

// Price is a model's list price in USD per million tokens.
type Price struct{ InputPerM, OutputPerM float64 }

// prices are list prices of the hosted models the project uses. Self-hosted models (the
// vLLM generator, the in-process GoMLX model) are not listed and cost 0 here.
var prices = map[string]Price{
	"llama-3.3-70b-versatile": {0.59, 0.79}, // Groq
	"llama-3.1-8b-instant":    {0.05, 0.08}, // Groq
	"gemini-2.0-flash":        {0.10, 0.40}, // Vertex AI / Gemini API
}

// EstimateCost returns the list-price cost of in prompt and out completion tokens for
// model, and whether the model has a known price (false means self-hosted or unknown,
// and usd is 0). Provider prefixes such as "models/" or "groq/" are ignored.
func EstimateCost(model string, in, out int64) (usd float64, known bool) {
	m := model
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	p, ok := prices[strings.ToLower(m)]
	if !ok {
		return 0, false
	}
	return (float64(in)*p.InputPerM + float64(out)*p.OutputPerM) / 1e6, true
}

// Cost is EstimateCost over a StatsSnapshot's token counts.
func (s StatsSnapshot) Cost(model string) (usd float64, known bool) {
	return EstimateCost(model, s.PromptTokens, s.CompletionTokens)
}

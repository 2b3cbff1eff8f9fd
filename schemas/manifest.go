package schemas

// ShardInfo describes one written Parquet shard; the manifest lists them with their
// content hashes, which is what makes a run's data verifiable (our DVC).
type ShardInfo struct {
	Stage     string `json:"stage"`
	Kind      string `json:"kind"` // "out" or "dead"
	PersonaID string `json:"persona_id,omitempty"`
	Path      string `json:"path"`
	Rows      int64  `json:"rows"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`
}

// Shard kinds.
const (
	ShardOut  = "out"
	ShardDead = "dead"
)

// StageSummary is one stage's accounting: every record it took in ended as an output row or
// a dead letter, so In == Out + Dead (Balanced).
type StageSummary struct {
	Stage       string           `json:"stage"`
	In          int64            `json:"in"`
	Out         int64            `json:"out"`
	Dead        int64            `json:"dead"`
	Balanced    bool             `json:"balanced"`
	DeadReasons map[string]int64 `json:"dead_reasons,omitempty"`
}

// Usage sums an LLM role's tokens (from the rows, so a cached re-run reports the same
// numbers) and their estimated cost.
type Usage struct {
	Model            string  `json:"model"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	EstimatedCostUSD float64 `json:"estimated_cost_usd"`
	PriceKnown       bool    `json:"price_known"`
}

// LabelStats summarises stage 2.
type LabelStats struct {
	PassRate float64 `json:"pass_rate"` // pairs / prompts labelled
	// Agreement counts LLM-vs-rules agreement over pairs where the rules judge had a
	// preference ("agree", "disagree", "n/a").
	Agreement     map[string]int64 `json:"agreement"`
	AgreementRate float64          `json:"agreement_rate"` // agree / (agree + disagree); 0 if none
	Vetoed        int64            `json:"vetoed"`
}

// Manifest is manifest.json at the run root: inputs, config, code version, and counts and
// content hashes per stage.
type Manifest struct {
	Job         string            `json:"job"`
	CreatedAt   string            `json:"created_at"`
	CodeVersion string            `json:"code_version"`
	Config      map[string]any    `json:"config"`
	Inputs      map[string]string `json:"inputs"` // name -> sha256 of the input
	Stages      []StageSummary    `json:"stages"`
	Balanced    bool              `json:"balanced"`
	Label       LabelStats        `json:"label"`
	Usage       map[string]Usage  `json:"usage"` // role ("generator", "judge") -> usage
	Shards      []ShardInfo       `json:"shards"`
}

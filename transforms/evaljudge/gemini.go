package evaljudge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genai"

	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// DefaultGeminiModel is the evaluation judge of the seed (PIPELINE.md §5).
const DefaultGeminiModel = "gemini-2.0-flash"

// geminiKind versions the cache entries of Gemini calls: change it when geminiRecord's
// format changes, and old entries stop matching.
const geminiKind = "genai.generateContent/v1"

// judgeMaxTokens bounds a verdict; the JSON with a two-sentence reasoning is ~250 tokens. A
// verdict cut off at the limit is invalid JSON and goes to the repair attempt.
const judgeMaxTokens = 1024

// APIKeyFromEnv returns the Gemini API key from the environment as genai reads it:
// GOOGLE_API_KEY, else GEMINI_API_KEY; "" when neither is set. getenv is os.Getenv outside
// tests. Launchers pass the result in GeminiConfig.APIKey and never log it.
func APIKeyFromEnv(getenv func(string) string) string {
	if k := getenv("GOOGLE_API_KEY"); k != "" {
		return k
	}
	return getenv("GEMINI_API_KEY")
}

// GeminiConfig selects the Gemini back-end and model.
type GeminiConfig struct {
	// Backend is genai.BackendGeminiAPI (needs APIKey) or genai.BackendVertexAI (needs
	// Project and Location).
	Backend genai.Backend
	// APIKey is the Gemini API key. It is sent only in the x-goog-api-key header.
	APIKey string
	// Project and Location are the Vertex AI project and region ("us-central1").
	Project, Location string
	// Model defaults to DefaultGeminiModel.
	Model string
	// BaseURL overrides the endpoint (tests, proxies); empty means genai's default for the
	// back-end.
	BaseURL string
	// HTTPClient sends the requests. With Vertex AI it must add credentials itself; nil
	// means Application Default Credentials. Nil with the Gemini API means a plain client.
	HTTPClient *http.Client
}

// Validate reports every missing or conflicting setting, naming the launcher flag to fix.
func (c GeminiConfig) Validate() error {
	var errs []error
	switch c.Backend {
	case genai.BackendGeminiAPI:
		if c.APIKey == "" {
			errs = append(errs, errors.New("the Gemini API needs an API key: set GOOGLE_API_KEY or GEMINI_API_KEY, or use Vertex AI with --project and --location"))
		}
		if c.Project != "" || c.Location != "" {
			errs = append(errs, errors.New("--project and --location are for Vertex AI; the Gemini API takes an API key only"))
		}
	case genai.BackendVertexAI:
		if c.Project == "" || c.Location == "" {
			errs = append(errs, fmt.Errorf("Vertex AI needs --project and --location (got project %q, location %q)", c.Project, c.Location))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown Gemini back-end %v: use the Gemini API or Vertex AI", c.Backend))
	}
	return errors.Join(errs...)
}

// GeminiJudge is the Gemini evaluation judge. It is safe for concurrent use.
type GeminiJudge struct {
	client *genai.Client
	model  string
	caller *llm.Caller
	redact func(string) string // removes the API key from text that leaves the judge
	now    func() time.Time
}

// NewGeminiJudge returns a Judge that asks cfg.Model through caller, at temperature 0 with a
// JSON response schema (VerdictSchema). genai's own retries stay off (no RetryOptions): the
// Caller retries 429s, 5xx and timeouts, honouring Retry-After and Google's RetryInfo.
func NewGeminiJudge(ctx context.Context, cfg GeminiConfig, caller *llm.Caller) (*GeminiJudge, error) {
	if caller == nil {
		return nil, errors.New("gemini judge: nil llm.Caller")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gemini judge: %w", err)
	}
	if cfg.Model == "" {
		cfg.Model = DefaultGeminiModel
	}
	key := cfg.APIKey
	redact := func(s string) string {
		if key == "" {
			return s
		}
		return strings.ReplaceAll(s, key, "[REDACTED]")
	}
	cc := &genai.ClientConfig{
		Backend:     cfg.Backend,
		APIKey:      cfg.APIKey,
		Project:     cfg.Project,
		Location:    cfg.Location,
		HTTPOptions: genai.HTTPOptions{BaseURL: cfg.BaseURL},
	}
	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient // a copy: the caller's client keeps its transport
		hc.Transport = captureTransport{base: orDefault(hc.Transport)}
		cc.HTTPClient = &hc
	} else {
		base := http.DefaultTransport
		if t, ok := base.(*http.Transport); ok {
			// One idle connection per request in flight, or a fan-out reconnects constantly.
			t = t.Clone()
			t.MaxIdleConnsPerHost = max(caller.Limits().Concurrency, 2)
			base = t
		}
		cc.HTTPClient = &http.Client{Transport: captureTransport{base: base}}
		if cfg.Backend == genai.BackendVertexAI {
			// Adds the ADC token source in front of our transport. (genai's own ADC client
			// would also send X-Goog-User-Project; pass an HTTPClient to control that.)
			if err := cc.UseDefaultCredentials(); err != nil {
				return nil, fmt.Errorf("gemini judge: Vertex AI credentials (run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS): %s", redact(err.Error()))
			}
		}
	}
	client, err := genai.NewClient(ctx, cc)
	if err != nil {
		// genai's messages print the whole ClientConfig, API key included: never wrap them.
		return nil, fmt.Errorf("gemini judge: %s", redact(err.Error()))
	}
	return &GeminiJudge{client: client, model: cfg.Model, caller: caller, redact: redact, now: time.Now}, nil
}

// Model returns the model the judge asks.
func (j *GeminiJudge) Model() string { return j.model }

// turn is one message of a Gemini conversation.
type turn struct {
	Role string `json:"role"` // "user" or "model"
	Text string `json:"text"`
}

// geminiRequest is everything that determines a Gemini answer; its canonical JSON is the
// cache key. It holds no endpoint, project or key: the same request to the same model is the
// same request on either back-end, and secrets must never reach the cache.
type geminiRequest struct {
	Kind             string        `json:"kind"`
	Model            string        `json:"model"`
	System           string        `json:"system"`
	Turns            []turn        `json:"turns"`
	Temperature      float64       `json:"temperature"`
	MaxTokens        int           `json:"max_tokens"`
	ResponseMIMEType string        `json:"response_mime_type"`
	ResponseSchema   *genai.Schema `json:"response_schema"`
}

// geminiRecord is the cached value of one answer: the request (for audits), the answer text,
// usage and the original latency.
type geminiRecord struct {
	Request          geminiRequest `json:"request"`
	Text             string        `json:"text"`
	FinishReason     string        `json:"finish_reason"`
	ModelVersion     string        `json:"model_version"`
	PromptTokens     int64         `json:"prompt_tokens"`
	CompletionTokens int64         `json:"completion_tokens"`
	LatencyMS        int64         `json:"latency_ms"`
}

// request builds the verdict request for a conversation.
func (j *GeminiJudge) request(turns []turn) geminiRequest {
	return geminiRequest{
		Kind: geminiKind, Model: j.model, System: systemPrompt, Turns: turns,
		Temperature: 0, MaxTokens: judgeMaxTokens,
		ResponseMIMEType: "application/json", ResponseSchema: VerdictSchema(),
	}
}

// Judge implements Judge. An answer that is not a usable verdict gets one repair request
// (the conversation so far, the parse error, "corrected JSON only"); if that fails too the
// error wraps ErrBadVerdict.
//
// Caching: the first answer is cached as received, usable or not, and a repaired answer
// under the key of the repair request; a re-run therefore replays the same answers without
// a call. A repair answer that is still unusable is not cached, so a re-run asks again.
func (j *GeminiJudge) Judge(ctx context.Context, r Request) (Verdict, error) {
	_, user, err := Prompt(r)
	if err != nil {
		return Verdict{Model: j.model}, err
	}
	first := []turn{{Role: "user", Text: user}}
	rec, hit, err := j.generate(ctx, j.request(first), nil)
	if err != nil {
		return Verdict{Model: j.model}, fmt.Errorf("gemini judge %s, case %s: %w", j.model, r.Case.ID, err)
	}
	spent := Verdict{Model: j.model, PromptTokens: rec.PromptTokens, CompletionTokens: rec.CompletionTokens, CacheHit: hit}
	v, perr := ParseVerdict(rec.Text)
	if perr != nil {
		why := strings.TrimPrefix(perr.Error(), ErrBadVerdict.Error()+": ")
		repair := []turn{first[0], {Role: "model", Text: rec.Text},
			{Role: "user", Text: fmt.Sprintf(repairPrompt, why, strings.Join(Criteria, ", "))}}
		rec2, hit2, err := j.generate(ctx, j.request(repair), func(text string) error {
			_, err := ParseVerdict(text)
			return err
		})
		if err != nil {
			return spent, fmt.Errorf("gemini judge %s, case %s: first answer unusable (%s); repair: %w", j.model, r.Case.ID, why, err)
		}
		spent.PromptTokens += rec2.PromptTokens
		spent.CompletionTokens += rec2.CompletionTokens
		spent.CacheHit = spent.CacheHit && hit2
		if v, err = ParseVerdict(rec2.Text); err != nil { // only a corrupt cache entry gets here
			return spent, fmt.Errorf("gemini judge %s, case %s: cached repair: %w", j.model, r.Case.ID, err)
		}
	}
	v.Model, v.PromptTokens, v.CompletionTokens, v.CacheHit = spent.Model, spent.PromptTokens, spent.CompletionTokens, spent.CacheHit
	return v, nil
}

// generate runs one request through the Caller and returns the (possibly cached) record.
// check, when non-nil, vets the answer text inside the attempt, so an unusable answer is
// neither cached nor retried.
func (j *GeminiJudge) generate(ctx context.Context, req geminiRequest, check func(string) error) (geminiRecord, bool, error) {
	key := llm.CacheKey(req)
	chars := len(req.System)
	contents := make([]*genai.Content, len(req.Turns))
	for i, t := range req.Turns {
		contents[i] = genai.NewContentFromText(t.Text, genai.Role(t.Role))
		chars += len(t.Text)
	}
	body, hit, err := j.caller.Do(ctx, key, llm.EstimateTokens(chars, req.MaxTokens), func(actx context.Context) (llm.Result, error) {
		cfg := &genai.GenerateContentConfig{
			SystemInstruction:     genai.NewContentFromText(req.System, genai.RoleUser),
			Temperature:           genai.Ptr(float32(req.Temperature)),
			MaxOutputTokens:       int32(req.MaxTokens),
			CandidateCount:        1,
			ResponseMIMEType:      req.ResponseMIMEType,
			ResponseSchema:        req.ResponseSchema,
			AutomaticContinuation: genai.Ptr(false), // one HTTP request per attempt
		}
		seen := &httpAnswer{}
		start := time.Now()
		res, err := j.client.Models.GenerateContent(context.WithValue(actx, httpAnswerKey{}, seen), req.Model, contents, cfg)
		if err != nil {
			return llm.Result{}, j.mapError(err, seen)
		}
		rec, err := recordFrom(req, res)
		if err != nil {
			return llm.Result{}, err
		}
		rec.LatencyMS = time.Since(start).Milliseconds()
		if check != nil {
			if err := check(rec.Text); err != nil {
				return llm.Result{}, err
			}
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return llm.Result{}, fmt.Errorf("%w: %v", llm.ErrBadResponse, err)
		}
		return llm.Result{Body: b, PromptTokens: rec.PromptTokens, CompletionTokens: rec.CompletionTokens}, nil
	})
	if err != nil {
		return geminiRecord{}, false, err
	}
	// Fresh and cached answers are decoded from the same bytes, so they are identical.
	var rec geminiRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return geminiRecord{}, false, fmt.Errorf("cache entry %s: %w: %v", key, llm.ErrBadResponse, err)
	}
	return rec, hit, nil
}

// recordFrom reads the first candidate's text and the usage of a response. A response
// without text (a blocked prompt, an empty candidate) is llm.ErrBadResponse: there is
// nothing to repair.
func recordFrom(req geminiRequest, res *genai.GenerateContentResponse) (geminiRecord, error) {
	rec := geminiRecord{Request: req, ModelVersion: res.ModelVersion}
	if u := res.UsageMetadata; u != nil {
		rec.PromptTokens = int64(u.PromptTokenCount)
		rec.CompletionTokens = int64(u.CandidatesTokenCount) + int64(u.ThoughtsTokenCount)
	}
	if len(res.Candidates) == 0 || res.Candidates[0].Content == nil {
		reason := "no candidates"
		if pf := res.PromptFeedback; pf != nil && pf.BlockReason != "" {
			reason = fmt.Sprintf("prompt blocked (%s)", pf.BlockReason)
		} else if len(res.Candidates) > 0 {
			reason = fmt.Sprintf("empty candidate (finish reason %s)", res.Candidates[0].FinishReason)
		}
		return geminiRecord{}, fmt.Errorf("%w: %s", llm.ErrBadResponse, reason)
	}
	c := res.Candidates[0]
	var b strings.Builder
	for _, p := range c.Content.Parts {
		if p != nil && !p.Thought {
			b.WriteString(p.Text)
		}
	}
	rec.Text, rec.FinishReason = b.String(), string(c.FinishReason)
	return rec, nil
}

// mapError turns genai's error for one attempt into what the Caller's retry policy reads:
// a genai.APIError becomes an *llm.APIError (status, Google status name, message, and the
// server's requested wait from Retry-After or a google.rpc.RetryInfo detail); transport
// errors keep their type with credentials and query strings removed from the URL.
func (j *GeminiJudge) mapError(err error, seen *httpAnswer) error {
	var ge genai.APIError
	var gp *genai.APIError
	switch {
	case errors.As(err, &ge):
	case errors.As(err, &gp) && gp != nil:
		ge = *gp
	default:
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redactURL(ue.URL)
		}
		if msg := j.redact(err.Error()); msg != err.Error() {
			return &redactedError{msg: msg, err: err}
		}
		return err
	}
	status := ge.Code
	if status == 0 {
		status = seen.status
	}
	return &llm.APIError{
		StatusCode: status,
		Code:       ge.Status,
		Message:    j.redact(ge.Message),
		RetryAfter: max(retryAfter(seen.header, j.now()), retryDelay(ge.Details)),
	}
}

// redactedError shows its cause's text with the API key removed, and keeps the cause for
// errors.Is and errors.As (the retry classification reads it).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// httpAnswer is where captureTransport leaves the status and headers of an attempt's error
// answer: genai.APIError keeps neither the headers nor, always, the status.
type httpAnswer struct {
	status int
	header http.Header
}

type httpAnswerKey struct{}

// captureTransport records error answers into the request context's *httpAnswer.
type captureTransport struct{ base http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(r)
	if err == nil && res.StatusCode >= 400 {
		if a, ok := r.Context().Value(httpAnswerKey{}).(*httpAnswer); ok {
			a.status, a.header = res.StatusCode, res.Header.Clone()
		}
	}
	return res, err
}

func orDefault(t http.RoundTripper) http.RoundTripper {
	if t == nil {
		return http.DefaultTransport
	}
	return t
}

// retryAfter reads a Retry-After header (seconds or an HTTP date); 0 when absent.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(min(max(s, 0), 86400) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// retryDelay reads the retryDelay of a google.rpc.RetryInfo error detail ("37s"); 0 when
// there is none.
func retryDelay(details []map[string]any) time.Duration {
	for _, d := range details {
		if t, _ := d["@type"].(string); !strings.HasSuffix(t, "google.rpc.RetryInfo") {
			continue
		}
		if s, ok := d["retryDelay"].(string); ok {
			if dur, err := time.ParseDuration(s); err == nil && dur > 0 {
				return min(dur, 24*time.Hour)
			}
		}
	}
	return 0
}

// redactURL drops user info, query and fragment from a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparseable URL>"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

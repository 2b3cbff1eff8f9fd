package llmtest

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Fault is a scripted misbehaviour: an HTTP error (Status >= 400), an extra delay, or a
// 200 whose content replaces the Responder's.
type Fault struct {
	Status              int // 0 or 200: answer normally (after Delay, with Content if set)
	Code, Type, Message string
	Header              http.Header
	Delay               time.Duration // added to the server's Latency
	Content             *string       // replaces the content of a 200 answer
	VLLM                bool          // write the error in vLLM's flat format
}

// RateLimited is Groq's 429 with Retry-After in whole seconds (rounded up).
func RateLimited(retryAfter time.Duration) *Fault {
	secs := int((retryAfter + time.Second - 1) / time.Second)
	return &Fault{
		Status: http.StatusTooManyRequests, Type: "tokens", Code: "rate_limit_exceeded",
		Message: fmt.Sprintf("Rate limit reached for model. Please try again in %ds.", secs),
		Header:  http.Header{"Retry-After": {strconv.Itoa(secs)}},
	}
}

// ServerError is a 500.
func ServerError() *Fault {
	return &Fault{Status: http.StatusInternalServerError, Type: "internal_server_error", Message: "Internal Server Error"}
}

// Unavailable is a 503, as a provider answers under load.
func Unavailable() *Fault {
	return &Fault{Status: http.StatusServiceUnavailable, Type: "service_unavailable", Message: "Service Unavailable"}
}

// Slow answers normally but only after d more than the server's latency; give it a d
// longer than the client's timeout to simulate a hung request.
func Slow(d time.Duration) *Fault { return &Fault{Delay: d} }

// Content answers 200 with content in place of the Responder's: InvalidJSON, for example.
func Content(content string) *Fault { return &Fault{Content: &content} }

// InvalidJSON is a 200 whose content is not valid JSON, as a model outside json_object
// mode may write.
func InvalidJSON() *Fault { return Content(`{"winner": "A", "scores_a": {`) }

// JSONValidateFailed is Groq's 400 for a json_object-mode answer that is not valid JSON.
func JSONValidateFailed() *Fault {
	return &Fault{
		Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "json_validate_failed",
		Message: "Failed to generate JSON. Please adjust your prompt. See 'failed_generation' for more details.",
	}
}

// BadRequest is a plain 400.
func BadRequest(msg string) *Fault {
	return &Fault{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: msg}
}

// ModelNotFound is vLLM's 404 for a model (LoRA adapter) it does not serve.
func ModelNotFound(model string) *Fault {
	return &Fault{
		Status: http.StatusNotFound, Type: "NotFoundError", VLLM: true,
		Message: fmt.Sprintf("The model `%s` does not exist.", model),
	}
}

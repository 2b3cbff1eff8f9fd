package geminitest

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Fault is a scripted misbehaviour: a Google error answer (Status >= 400), an extra delay, a
// 200 whose text replaces the Responder's, or a 200 without candidates (a blocked prompt).
type Fault struct {
	Status int // 0 or 200: answer normally (after Delay, with Text if set)
	// GoogleStatus is the canonical code name of the error body ("RESOURCE_EXHAUSTED").
	GoogleStatus string
	Message      string
	// Details are the error's google.rpc detail objects (RetryInfo, ErrorInfo, ...).
	Details []map[string]any
	Header  http.Header
	Delay   time.Duration // added to the server's Latency
	Text    *string       // replaces the text of a 200 answer
	// BlockReason answers 200 with no candidates and promptFeedback.blockReason set.
	BlockReason string
}

// RateLimited is Google's 429 RESOURCE_EXHAUSTED with a Retry-After header in whole seconds
// (rounded up) and the same delay as a google.rpc.RetryInfo detail, as the Gemini API sends.
func RateLimited(retryAfter time.Duration) *Fault {
	secs := int((retryAfter + time.Second - 1) / time.Second)
	return &Fault{
		Status: http.StatusTooManyRequests, GoogleStatus: "RESOURCE_EXHAUSTED",
		Message: "You exceeded your current quota, please check your plan and billing details.",
		Details: []map[string]any{{
			"@type":      "type.googleapis.com/google.rpc.RetryInfo",
			"retryDelay": strconv.Itoa(secs) + "s",
		}},
		Header: http.Header{"Retry-After": {strconv.Itoa(secs)}},
	}
}

// ServerError is a 500 INTERNAL.
func ServerError() *Fault {
	return &Fault{Status: http.StatusInternalServerError, GoogleStatus: "INTERNAL", Message: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"}
}

// Unavailable is a 503 UNAVAILABLE, as the API answers when the model is overloaded.
func Unavailable() *Fault {
	return &Fault{Status: http.StatusServiceUnavailable, GoogleStatus: "UNAVAILABLE", Message: "The model is overloaded. Please try again later."}
}

// BadRequest is a 400 INVALID_ARGUMENT.
func BadRequest(msg string) *Fault {
	return &Fault{Status: http.StatusBadRequest, GoogleStatus: "INVALID_ARGUMENT", Message: msg}
}

// NotFound is the 404 NOT_FOUND for a model the endpoint does not serve.
func NotFound(model string) *Fault {
	return &Fault{
		Status: http.StatusNotFound, GoogleStatus: "NOT_FOUND",
		Message: fmt.Sprintf("models/%s is not found for API version v1beta, or is not supported for generateContent.", model),
	}
}

// Slow answers normally but only after d more than the server's latency; give it a d longer
// than the client's timeout to simulate a hung request.
func Slow(d time.Duration) *Fault { return &Fault{Delay: d} }

// Text answers 200 with text in place of the Responder's.
func Text(text string) *Fault { return &Fault{Text: &text} }

// InvalidJSON is a 200 whose text is not valid JSON: a verdict cut off mid-object, as a
// model that hits its output limit writes.
func InvalidJSON() *Fault { return Text(`{"scores_a": {"persona_alignment": 7, "constraint_compl`) }

// SchemaBreaking is a 200 whose text is valid JSON that breaks the verdict schema: an
// unknown winner, a missing confidence and a score outside 0–10.
func SchemaBreaking() *Fault {
	return Text(`{"scores_a": {"persona_alignment": 11, "constraint_compliance": 5, "preferred_ingredients": 5, "recipe_quality": 5, "overall_suitability": 5}, "winner": "C", "reasoning": "both fine"}`)
}

// Blocked is a 200 without candidates whose promptFeedback says the prompt was blocked.
func Blocked() *Fault { return &Fault{BlockReason: "SAFETY"} }

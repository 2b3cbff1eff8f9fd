package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// APIError is an error answer (HTTP status >= 400) from an LLM endpoint, reduced to what
// the retry policy and dead letters need. Unlike the SDK's error it keeps no *http.Request,
// so printing or serializing it cannot leak the Authorization header.
type APIError struct {
	StatusCode int
	// Code and Type are the provider's error code and type ("json_validate_failed",
	// "invalid_request_error"), empty when the body had none.
	Code, Type string
	Message    string
	// RetryAfter is the server's Retry-After (or retry-after-ms), 0 when absent.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		msg := e.Message
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		b.WriteString(": " + msg)
	}
	return b.String()
}

// CodeJSONValidateFailed is Groq's error code for a json_object-mode answer that is not
// valid JSON. It comes with HTTP 400 but is a property of one sample, so it is retried once.
const CodeJSONValidateFailed = "json_validate_failed"

// ErrBadResponse reports a 200 answer that does not hold a usable completion.
var ErrBadResponse = errors.New("llm: unusable response")

// Error classes returned by Classify: the Detail of a dead letter.
const (
	ClassRateLimited        = "rate_limited"
	ClassServerError        = "server_error"
	ClassTimeout            = "timeout"
	ClassConnection         = "connection"
	ClassBadRequest         = "bad_request"
	ClassJSONValidateFailed = "json_validate_failed"
	ClassAuth               = "auth"
	ClassModelNotFound      = "model_not_found"
	ClassBadResponse        = "bad_response"
	ClassBadVerdict         = "bad_verdict"
	ClassCanceled           = "canceled"
	ClassUnknown            = "unknown"
)

// Classify maps an error from a Caller or a client of this package to a short, stable code
// for dead letters and counters; "" for nil.
func Classify(err error) string {
	var ae *APIError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, ErrBadVerdict):
		return ClassBadVerdict
	case errors.As(err, &ae):
		switch s := ae.StatusCode; {
		case s == http.StatusTooManyRequests:
			return ClassRateLimited
		case s == http.StatusRequestTimeout:
			return ClassTimeout
		case s >= 500:
			return ClassServerError
		case s == http.StatusUnauthorized || s == http.StatusForbidden:
			return ClassAuth
		case s == http.StatusNotFound:
			return ClassModelNotFound
		case ae.Code == CodeJSONValidateFailed:
			return ClassJSONValidateFailed
		default:
			return ClassBadRequest
		}
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, ErrBadResponse):
		return ClassBadResponse
	case isConnectionError(err):
		return ClassConnection
	}
	return ClassUnknown
}

// isConnectionError reports transport failures worth retrying: refused or reset
// connections, truncated bodies, and anything the HTTP client reports as a *url.Error
// (which implements net.Error).
func isConnectionError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// maxRetryAfter is the longest Retry-After the Caller sleeps through. A longer one means
// a quota (Groq's requests per day) is spent, and retrying within the job is pointless.
const maxRetryAfter = 10 * time.Minute

// retryable decides whether a failed attempt is worth another, and the server's minimum
// wait when it named one. jsonRetried says a json_validate_failed was already retried.
// The caller has checked that the parent context is still live, so a DeadlineExceeded
// here is the attempt's own timeout.
func retryable(err error, jsonRetried bool) (bool, time.Duration) {
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		switch s := ae.StatusCode; {
		case s == http.StatusTooManyRequests, s == http.StatusRequestTimeout, s >= 500:
			return ae.RetryAfter <= maxRetryAfter, ae.RetryAfter
		case s == http.StatusBadRequest && ae.Code == CodeJSONValidateFailed:
			return !jsonRetried, 0
		}
		return false, 0
	case errors.Is(err, context.Canceled):
		return false, 0
	case errors.Is(err, context.DeadlineExceeded):
		return true, 0
	case errors.Is(err, ErrBadResponse), errors.Is(err, ErrBadVerdict):
		return false, 0
	}
	return isConnectionError(err), 0
}

// baseBackoff is the first retry's backoff ceiling; it doubles per retry up to MaxBackoff.
const baseBackoff = 500 * time.Millisecond

// backoff is exponential backoff with full jitter: uniform in [0, min(max, base·2^retry)].
// A server's Retry-After is a floor: never retry sooner than it asked.
func backoff(retry int, maxBackoff, retryAfter time.Duration) time.Duration {
	ceil := maxBackoff
	if retry < 30 && baseBackoff<<retry < maxBackoff {
		ceil = baseBackoff << retry
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	return max(d, retryAfter)
}

// parseRetryAfter reads the server's requested wait: retry-after-ms (OpenAI, Groq) first,
// then Retry-After as seconds or an HTTP date. It returns 0 when there is none.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms > 0 {
			return time.Duration(min(ms, 864e5) * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 {
			return time.Duration(min(s, 86400) * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

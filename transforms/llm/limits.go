package llm

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Limits bound how hard one Caller (and every Caller sharing its name, see Shared) pushes
// an LLM endpoint. The launchers expose them as --rpm, --tpm, --concurrency, --max_retries
// and --timeout.
type Limits struct {
	// RPM is the client-side ceiling on HTTP requests per minute, retries included.
	RPM float64
	// TPM is the ceiling on estimated tokens per minute (prompt chars/4 + max_tokens);
	// 0 means unlimited.
	TPM float64
	// Concurrency is the number of requests in flight at once.
	Concurrency int
	// MaxRetries is how many times a failed attempt is retried (0 = one attempt only).
	MaxRetries int
	// Timeout bounds each attempt, not the call as a whole: a retry gets a fresh Timeout.
	Timeout time.Duration
	// MaxBackoff caps the exponential backoff between attempts. A server's Retry-After is
	// honoured even when longer.
	MaxBackoff time.Duration
}

// DefaultLimits are the limits of Groq's free tier for llama-3.3-70b-versatile (30 RPM,
// 12K TPM), the tightest endpoint the project talks to. A self-hosted vLLM generator
// should be given far higher ones by its launcher.
func DefaultLimits() Limits {
	return Limits{
		RPM:         30,
		TPM:         12000,
		Concurrency: 4,
		MaxRetries:  5,
		Timeout:     60 * time.Second,
		MaxBackoff:  30 * time.Second,
	}
}

// Validate reports every unusable limit, naming the launcher flag to fix.
func (l Limits) Validate() error {
	var errs []error
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if !(l.RPM > 0) || !finite(l.RPM) {
		errs = append(errs, fmt.Errorf("--rpm must be > 0, got %g", l.RPM))
	}
	if !(l.TPM >= 0) || !finite(l.TPM) {
		errs = append(errs, fmt.Errorf("--tpm must be >= 0 (0 = unlimited), got %g", l.TPM))
	}
	if l.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency must be >= 1, got %d", l.Concurrency))
	}
	if l.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("--max_retries must be >= 0, got %d", l.MaxRetries))
	}
	if l.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout must be > 0, got %s", l.Timeout))
	}
	if l.MaxBackoff <= 0 {
		errs = append(errs, fmt.Errorf("max backoff must be > 0, got %s", l.MaxBackoff))
	}
	return errors.Join(errs...)
}

//go:build xla

package train

// Built with -tags xla, this package's tests and benchmarks also run on GoMLX's XLA backend:
// GOMLX_BACKEND=xla:cuda with the PJRT CUDA plugin set up as the README's Training section says.
import _ "github.com/gomlx/go-xla/compute/xla"

func init() { missingBackend = "xla:no_such_plugin" }

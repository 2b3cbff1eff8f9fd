package train

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend" // the pure-Go backend, always available
)

// cudaHelp explains how to make the XLA CUDA backend available.
const cudaHelp = `the XLA backends need (1) a trainer binary built without -tags noxla, with
github.com/gomlx/go-xla linked in (build with -tags xla, see trainer/cmd/trainer/xla.go), and
(2) the PJRT CUDA plugin: pjrt_c_api_cuda_plugin.so in $PJRT_PLUGIN_LIBRARY_PATH (the
jax-cuda13-pjrt wheel's xla_cuda_plugin.so is that file; it needs the nvidia-* CUDA libraries of
the same wheel set in ../nvidia beside it). GOMLX_NO_AUTO_INSTALL=1 stops GoMLX from downloading
them itself. Use --backend go (or GOMLX_BACKEND=go) for the pure-Go CPU backend`

// NewBackend creates the GoMLX backend named by config ("go", "go:ops_sequential",
// "xla:cuda", ...); empty means $GOMLX_BACKEND, else the pure-Go backend. A backend that is
// not compiled in or whose plugin is missing is an error explaining the set-up, never a panic.
func NewBackend(config string) (b compute.Backend, err error) {
	if config == "" {
		config = os.Getenv(compute.ConfigEnvVar)
	}
	if config == "" {
		config = "go"
	}
	defer func() {
		if r := recover(); r != nil {
			err = backendError(config, fmt.Errorf("%v", r))
		}
	}()
	b, err = compute.NewWithConfig(config)
	if err != nil {
		return nil, backendError(config, err)
	}
	return b, nil
}

// isGoBackend reports whether b is GoMLX's pure-Go backend (host-drawn dropout masks,
// bit-identical reruns).
func isGoBackend(b compute.Backend) bool { return b.String() == gobackend.BackendName }

func backendError(config string, err error) error {
	name, _, _ := strings.Cut(config, ":")
	msg := fmt.Sprintf("backend %q: %v (compiled-in backends: %s)", config, err, strings.Join(compute.List(), ", "))
	if name == "xla" || name == "stablehlo" || strings.Contains(strings.ToLower(err.Error()), "pjrt") {
		msg += "; " + cudaHelp
	}
	return fmt.Errorf("%s", msg)
}

//go:build xla

package main

// Built with -tags xla (and without noxla), the binary links GoMLX's XLA backend, so
// --backend xla:cuda (or GOMLX_BACKEND=xla:cuda) trains on a GPU through the PJRT CUDA plugin:
// pjrt_c_api_cuda_plugin.so in $PJRT_PLUGIN_LIBRARY_PATH (the jax-cuda13-pjrt wheel's
// xla_cuda_plugin.so, with the wheel set's nvidia-* libraries in ../nvidia beside it). This
// needs github.com/gomlx/go-xla in go.mod, which the default (pure-Go) build does not.
import _ "github.com/gomlx/go-xla/compute/xla"

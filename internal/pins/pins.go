//go:build pins

// Package pins keeps the exact versions of dependencies that later stages (trainer,
// evaluation) build on in go.mod before code imports them, so that every stage resolves
// against the same, verified set (see ../shared/DESIGN.md). The build tag keeps them out of
// normal builds; `go mod tidy` still sees them.
package pins

import (
	_ "cloud.google.com/go/bigquery"
	_ "github.com/gomlx/compute/gobackend"
	_ "github.com/gomlx/gomlx/ml/model"
	_ "google.golang.org/genai"
)

// Command prepare launches the data-preparation job (beam/prepare): prompts → variants A/B →
// preference pairs → ChatML DPO examples, as Parquet shards under --output, on the prism
// runner (default) or Dataflow (--runner=dataflow). See README.md for every flag.
//
// API keys come only from the environment: GENERATOR_API_KEY for the generator endpoint and
// GROQ_API_KEY for --labeler=groq.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
)

func main() {
	o := registerFlags(flag.CommandLine)
	flag.Parse()
	// beam.Init points slog's default logger, which prism logs every job transition to, at
	// beamlog.LogLevel; keep that chatter for --log_level=debug.
	if o.LogLevel != "debug" {
		beamlog.LogLevel = "warn"
	}
	// On a Dataflow worker, Init runs the SDK harness and never returns: it must come before
	// anything that reads local files.
	beam.Init()
	logger := newLogger(o.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, logger, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "prepare: %v\n", err)
		os.Exit(1)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(os.Stderr, "prepare: --log_level=%q: use debug, info, warn or error\n", level)
		os.Exit(2)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

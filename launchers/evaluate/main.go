// Command evaluate launches the evaluation job (beam/evaluate): DPO vs SFT on the test cases,
// judged in both orders by the rules judge (offline default) or Gemini, with results and
// reports under --output. See README.md for every flag.
//
// Keys come only from the environment: GEMINI_API_KEY (or GOOGLE_API_KEY) for
// --judge=gemini --gemini_backend=gemini-api, GENERATOR_API_KEY for an endpoint that wants one.
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
	if o.LogLevel != "debug" {
		beamlog.LogLevel = "warn" // prism's job chatter only at debug
	}
	beam.Init() // on a Dataflow worker this runs the harness and never returns
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "evaluate: --log_level=%q: use debug, info, warn or error\n", o.LogLevel)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, logger, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "evaluate: %v\n", err)
		os.Exit(1)
	}
}

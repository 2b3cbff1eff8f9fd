// Command demo runs the whole recipe-DPO pipeline offline on one CPU machine (make demo):
//
//  1. a tiny SFT model made by the project — synthetic recipe corpus (transforms/sftcorpus),
//     a byte-level BPE tokenizer, a small Llama trained with the trainer's sft mode — cached
//     under --cache and rebuilt only when missing;
//  2. the data-preparation job (beam/prepare on prism) with the in-process GoMLX generator
//     and the rules labeller;
//  3. the trainer's DPO for every persona;
//  4. the evaluation job (beam/evaluate) with in-process generation and the rules judge.
//
// Everything lands under --out; the demo ends by printing the per-persona summary and the
// path of reports/evaluation_report.html. It drives the same binaries a user runs (bin/trainer,
// bin/prepare, bin/evaluate), so the demo exercises exactly the documented commands.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
)

func main() {
	o := registerFlags(flag.CommandLine)
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, logger); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// Command trainer makes small Llama models and trains LoRA adapters (or, with --full, every
// weight) on the data-preparation job's DPO shards, with GoMLX (the pure-Go backend by
// default; --backend xla:cuda for GPUs).
//
//	trainer init --output models/tiny --vocab tokenizer.json --hidden_size 64 --layers 2 --heads 4 --kv_heads 2
//	trainer tokenizer train --input corpus.txt --vocab_size 2048 --output tokenizer.json
//	trainer train --data_root out/prepare --persona persona_a_korean_spicy --model_dir models/tiny
//	trainer train --mode sft --full --data_root out/prepare --persona p --model_dir models/tiny  # full model dir out
//	trainer train-all --data_root out/prepare --model_dir models/tiny [--sft_adapter dir]
//
// Every subcommand takes --log_level (debug, info, warn, error); run one with -h for its flags.
// Errors exit with status 1 and say what to fix; SIGINT/SIGTERM during training save a
// checkpoint first, so the run continues with --resume.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is stamped by the Makefile (-X main.version=...).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "trainer:", err)
		}
		os.Exit(exitCode(err))
	}
}

const usage = `usage: trainer <command> [flags]

commands:
  init              write a random-initialised Llama model directory of a given shape
  tokenizer train   learn a byte-level BPE tokenizer.json from text files
  train             train one persona's LoRA adapter (dpo or sft), or all weights with --full
  train-all         train every persona found under --data_root
  generate          answer requests with a model (+ SFT / DPO adapters), KV-cached decoding
  version           print the version

Run "trainer <command> -h" for the command's flags.`

// run dispatches a subcommand; main only maps its error to an exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "init":
		return runInit(ctx, rest, stderr)
	case "tokenizer":
		if len(rest) == 0 || rest[0] != "train" {
			fmt.Fprintln(stderr, usage)
			return errors.New(`"tokenizer" needs a subcommand: tokenizer train`)
		}
		return runTokenizerTrain(ctx, rest[1:], stderr)
	case "train":
		return runTrain(ctx, rest, stderr, false)
	case "train-all":
		return runTrain(ctx, rest, stderr, true)
	case "generate":
		return runGenerate(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// exitCode is 2 for flag errors (as the flag package does), 1 otherwise.
func exitCode(err error) int {
	var fe flagError
	if errors.As(err, &fe) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

// flagError marks a command-line parsing error.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

// newFlagSet returns a flag set for cmd that reports to stderr and a --log_level flag.
func newFlagSet(cmd string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("trainer "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	level := fs.String("log_level", "info", "log level: debug, info, warn or error")
	return fs, level
}

// parse parses args; positional arguments are an error (every input is a named flag).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return flagError{err}
	}
	if fs.NArg() > 0 {
		return flagError{fmt.Errorf("unexpected argument %q (flags are --name value)", fs.Arg(0))}
	}
	return nil
}

// newLogger is a text slog logger on stderr at level.
func newLogger(stderr io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, flagError{fmt.Errorf("--log_level %q: use debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})), nil
}

// isTerminal reports whether w is a character device (a terminal), for the progress bar.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// listFlag is a repeatable, comma-separated string list flag; the first use replaces the
// default.
type listFlag struct {
	vals *[]string
	set  bool
}

func (l *listFlag) String() string {
	if l.vals == nil {
		return ""
	}
	return strings.Join(*l.vals, ",")
}

func (l *listFlag) Set(s string) error {
	if !l.set {
		*l.vals, l.set = nil, true
	}
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l.vals = append(*l.vals, part)
		}
	}
	return nil
}

# recipe-DPO — every command the README documents. Settings are overridable:
#   make test RUNNER=prism        make prepare OUTPUT=gs://bucket/run1 LABELER=groq
SHELL := /bin/bash

# GoMLX v0.28.16 needs Go 1.27; the toolchain downloads through the module proxy.
export GOTOOLCHAIN ?= go1.27.3
# 10–50x faster pure-Go GoMLX kernels.
export GOEXPERIMENT ?= simd
# CPU backend unless a PJRT plugin is configured; never auto-download XLA.
export GOMLX_BACKEND ?= go
export GOMLX_NO_AUTO_INSTALL ?= 1

GO      ?= go
TAGS    ?= noxla
RUNNER  ?= prism
OUTPUT  ?= out/prepare
LABELER ?= rules
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# The BigQuery emulator the tests run (transforms/bqload/bqtest): a separate module,
# tools/bqemulator, built once into .cache/ (gitignored) because it takes minutes and ~6.5 GB
# of memory to compile (-p=1 keeps it to one package at a time). Delete the file to rebuild.
BQ_EMULATOR         := .cache/bin/bigquery-emulator
BQ_EMULATOR_GOFLAGS ?= -p=1

# Dataflow settings (make prepare-dataflow PROJECT=... REGION=... BUCKET=...).
PROJECT ?=
REGION  ?= us-central1
BUCKET  ?=

.PHONY: all build bins gpu-bundle test test-short bench lint demo demo-sft-model prepare worker prepare-dataflow prepare-dataflow-dry-run clean

all: lint test

build:
	$(GO) build -tags $(TAGS) ./...

## test: every unit, pipeline (prism) and emulator test, offline.
test: $(BQ_EMULATOR)
	$(GO) test -tags $(TAGS) -count=1 ./...

## test-short: skips the slow tests.
test-short:
	$(GO) test -tags $(TAGS) -short ./...

## bench: speed and memory targets (reported, never asserted in tests).
bench:
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchtime 1x -benchmem ./...

## lint: gofmt + go vet.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...
	@if $(GO) list -tags $(TAGS) -deps ./trainer/... | grep -q '^github.com/apache/beam'; then \
	  echo "trainer/ must not import Beam"; exit 1; fi

DEMO_ARGS ?=

## demo: the whole pipeline offline (tiny SFT model → prepare → DPO → evaluate) under out/demo.
demo: bins
	$(BIN)/demo $(DEMO_ARGS)

## demo-sft-model: (re)build only the demo's cached tiny SFT model.
demo-sft-model: bins
	$(BIN)/demo --only sft $(DEMO_ARGS)

## bins: the four binaries (trainer, prepare, evaluate, demo).
bins: FORCE
	$(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/ ./trainer/cmd/trainer ./launchers/prepare ./launchers/evaluate ./launchers/demo

## .cache/bin/bigquery-emulator: build the BigQuery emulator for the tests (skipped when present).
$(BQ_EMULATOR):
	@mkdir -p $(@D)
	@echo "building $@ (once; several minutes)"
	cd tools/bqemulator && \
	  v=$$($(GO) list -m -f '{{.Version}}' github.com/goccy/bigquery-emulator) && \
	  GOFLAGS='$(BQ_EMULATOR_GOFLAGS)' $(GO) build -ldflags "-X main.version=$$v" -o $(CURDIR)/$@.tmp \
	    github.com/goccy/bigquery-emulator/cmd/bigquery-emulator
	mv $@.tmp $@

$(BIN)/prepare: FORCE
	$(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $@ ./launchers/prepare

## prepare: the data-preparation job on the local prism runner.
prepare: $(BIN)/prepare
	$(BIN)/prepare --runner=$(RUNNER) --output=$(OUTPUT) --labeler=$(LABELER) $(ARGS)

## worker: the Linux worker binary Dataflow runs (no cgo, so it runs in Beam's container).
worker:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/prepare-worker ./launchers/prepare

## prepare-dataflow: submit the data-preparation job to Dataflow.
prepare-dataflow: worker $(BIN)/prepare
	launchers/prepare/dataflow.sh

## prepare-dataflow-dry-run: build and validate the Dataflow job offline without submitting it.
prepare-dataflow-dry-run: worker $(BIN)/prepare
	DRY_RUN=1 launchers/prepare/dataflow.sh

## gpu-bundle: what launchers/gpu_check.sh runs on a CUDA machine, in .cache/gpu/: the trainer
## and the llama, generate and train test binaries built with -tags xla (xz-compressed), and,
## when out/demo exists (make demo), the demo's SFT model with three personas' DPO data.
GPU_BUNDLE     := .cache/gpu
GPU_PERSONAS   := persona_a_korean_spicy persona_b_indian_veg persona_c_italian_gf
gpu-bundle:
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)
	$(GO) build -tags xla -ldflags '-s -w $(LDFLAGS)' -o $(GPU_BUNDLE)/trainer ./trainer/cmd/trainer
	for p in llama generate train; do \
	  $(GO) test -c -tags xla -ldflags '-s -w' -o $(GPU_BUNDLE)/$$p.test ./trainer/$$p || exit 1; done
	xz -T0 -6 $(GPU_BUNDLE)/trainer $(GPU_BUNDLE)/*.test
	@model=$$(sed -n 's/^ *"model_dir": "\(.*\)",$$/\1/p' out/demo/manifest.json 2>/dev/null | head -1); \
	  if [ -n "$$model" ] && [ -d "$$model" ]; then \
	    mkdir -p $(GPU_BUNDLE)/demo/model $(GPU_BUNDLE)/demo/data/dpo_formatted && \
	    cp $$model/config.json $$model/model.safetensors $$model/tokenizer.json $(GPU_BUNDLE)/demo/model/ && \
	    for p in $(GPU_PERSONAS); do cp -r out/demo/data/dpo_formatted/persona=$$p $(GPU_BUNDLE)/demo/data/dpo_formatted/; done && \
	    echo "gpu-bundle: with the demo model $$model"; \
	  else echo "gpu-bundle: no out/demo (make demo first): the bundle has no demo model and data"; fi
	@du -sh $(GPU_BUNDLE)

clean:
	rm -rf $(BIN)

FORCE:

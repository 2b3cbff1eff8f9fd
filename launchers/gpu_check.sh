#!/usr/bin/env bash
# gpu_check.sh: run the trainer's checks on a CUDA GPU through GoMLX's XLA backend.
#
#   make gpu-bundle                      # here: builds .cache/gpu/ (binaries with -tags xla, .xz)
#   launchers/gpu_check.sh [BUNDLE]      # there, from the repository root (default .cache/gpu)
#
# The GPU machine needs no Go toolchain: the bundle holds the trainer and the llama, generate
# and train test binaries, built where the code is, and (after `make demo`) the demo's SFT
# model with three personas' DPO data. The PJRT CUDA plugin comes from a JAX installation
# (jax-cuda13-pjrt or jax-cuda12-pjrt; python3 must import it) or from
# $PJRT_PLUGIN_LIBRARY_PATH when that already holds pjrt_c_api_cuda_plugin.so.
#
# Steps, each under a time limit cut to what is left of BUDGET seconds (default 540):
#   llama, generate, train   the packages' tests on xla:cuda with exact float32 matmuls
#                            (tf32=false), run from their package directories (testdata);
#   llama_tf32               the PyTorch-fixture test with the default TF32 matmuls;
#   cli_train, cli_generate  `trainer train-all` on the demo's data, then `trainer generate`
#                            with one adapter (default settings, TF32);
#   bench                    BenchmarkDPOStep and BenchmarkRefCacheEpoch/h256 (if time is left).
# STEPS names the steps to run (default all: "llama llama_tf32 cli_train cli_generate generate
# train bench"); the llama step also checks that the backend runs at all, so it always runs.
# BACKEND=go runs the same steps on the pure-Go CPU backend, to try the script without a GPU.
# Logs go to $OUT (default ./gpu-check-out): summary.txt and logs.tgz. The summary is printed
# last. Exit status: 0 when every step ran to its end with rc 0, else 1.
set -u
ROOT=$(pwd)
B=$(cd "${1:-.cache/gpu}" 2>/dev/null && pwd) || { echo "gpu_check: no bundle at ${1:-.cache/gpu}: run make gpu-bundle" >&2; exit 2; }
OUT=${OUT:-$ROOT/gpu-check-out}
LOGS=$(mktemp -d)
mkdir -p "$OUT"
SUM=$OUT/summary.txt
: >"$SUM"
T0=$(date +%s)
DEADLINE=$((T0 + ${BUDGET:-540}))
FAILED=0
say() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$SUM"; }

# step NAME MAX CMD...: CMD with a limit of min(MAX, time left); its output in NAME.log.
step() {
  local name=$1 max=$2
  shift 2
  case " ${STEPS:-llama llama_tf32 cli_train cli_generate generate train bench} llama " in
  *" $name "*) ;;
  *) return ;;
  esac
  local left=$((DEADLINE - $(date +%s)))
  local limit=$((max < left ? max : left))
  if [ "$limit" -lt 10 ]; then
    say "$name: skipped, no time left"
    FAILED=1
    return
  fi
  local s rc
  s=$(date +%s)
  timeout -k 5 "$limit" "$@" >>"$LOGS/$name.log" 2>&1
  rc=$?
  [ "$rc" = 0 ] || FAILED=1
  say "$name: rc=$rc in $(($(date +%s) - s))s (limit $limit)"
}

# tests NAME: the pass/fail lines of a go test log.
tests() { grep -E '^(--- |    --- FAIL|FAIL|ok|PASS|panic)' "$LOGS/$1.log" >>"$SUM" 2>/dev/null; }

finish() {
  say "done; logs in $OUT/logs.tgz"
  tar czf "$OUT/logs.tgz" -C "$LOGS" .
  cat "$SUM"
  exit "$FAILED"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$SUM" 2>&1 || say "nvidia-smi failed"
(cd "$B" && for f in *.xz; do [ -e "$f" ] && xz -dk -f -T0 "$f"; done && chmod +x trainer *.test) || { say "cannot unpack $B"; exit 1; }

# The plugin: go-xla loads pjrt_c_api_cuda_plugin.so from $PJRT_PLUGIN_LIBRARY_PATH and points
# XLA at the CUDA libraries in ../nvidia beside it, the pip wheels' layout.
CUDA=${BACKEND:-xla:cuda} EXACT='xla:cuda,tf32=false'
[ "$CUDA" = xla:cuda ] || EXACT=$CUDA
if [ "$CUDA" = xla:cuda ] && ! ls "${PJRT_PLUGIN_LIBRARY_PATH:-/nonexistent}"/pjrt_c_api_cuda_plugin.so >/dev/null 2>&1; then
  plugin=$(python3 - <<'EOF' 2>/dev/null
import glob, importlib, os
for name in ("jax_plugins.xla_cuda13", "jax_plugins.xla_cuda12"):
    try:
        m = importlib.import_module(name)
    except ImportError:
        continue
    for d in m.__path__:
        for so in glob.glob(os.path.join(d, "*.so")):
            print(so)
            raise SystemExit
EOF
  )
  [ -n "$plugin" ] || { say "no PJRT CUDA plugin: install jax-cuda13-pjrt or set PJRT_PLUGIN_LIBRARY_PATH"; exit 1; }
  site=$(dirname "$(dirname "$(dirname "$plugin")")")
  dir=$(mktemp -d)
  mkdir -p "$dir/pjrt" && ln -sf "$plugin" "$dir/pjrt/pjrt_c_api_cuda_plugin.so" && ln -sfn "$site/nvidia" "$dir/nvidia"
  export PJRT_PLUGIN_LIBRARY_PATH=$dir/pjrt
  say "plugin $plugin"
fi
export GOMLX_NO_AUTO_INSTALL=1

cd "$ROOT/trainer/llama" || exit 1
GOMLX_BACKEND=$EXACT step llama 120 "$B/llama.test" -test.v -test.count=1
tests llama
grep -q -- '--- PASS' "$LOGS/llama.log" || { say "$EXACT does not run"; tail -30 "$LOGS/llama.log" >>"$SUM"; finish; }
GOMLX_BACKEND=$CUDA step llama_tf32 60 "$B/llama.test" -test.v -test.count=1 -test.run TestMatchesPyTorch
grep -E '^(    --- |    fixture_test.go:114)' "$LOGS/llama_tf32.log" >>"$SUM" 2>/dev/null

if [ -d "$B/demo/data" ]; then
  work=$(mktemp -d)
  cp -r "$B/demo/." "$work/"
  cd "$work" || exit 1
  GOMLX_BACKEND=$CUDA step cli_train 180 "$B/trainer" train-all --mode dpo --data_root . --model_dir model \
    --output_dir trained_models --epochs 5 --learning_rate 0.001 --beta 0.1 --loss_type sigmoid --label_smoothing 0.1 \
    --rpo_alpha 0.5 --batch_size 4 --grad_accum 1 --seed 42 --logging_steps 5 --save_steps 0
  grep -E 'reference log-probs|reusing|msg=done' "$LOGS/cli_train.log" 2>/dev/null | sed 's/^time=[^ ]* //' >>"$SUM"
  for m in trained_models/*/metrics.jsonl; do
    [ -e "$m" ] && echo "$m: $(tail -1 "$m" | cut -c1-160)" >>"$SUM"
  done
  for d in trained_models/*/; do
    [ -e "$d/metrics.jsonl" ] && cp "$d/metrics.jsonl" "$LOGS/$(basename "$d").metrics.jsonl"
  done
  adapter=$(ls -d trained_models/*/ 2>/dev/null | head -1)
  printf 'Give me a spicy Korean dinner.\nA gluten-free pasta, please.\n' >prompts.txt
  [ -n "$adapter" ] && GOMLX_BACKEND=$CUDA step cli_generate 60 "$B/trainer" generate --model_dir model \
    --adapter "$adapter" --prompts_file prompts.txt --max_new_tokens 64 --seed 1
else
  say "cli: no demo data in the bundle (make demo before make gpu-bundle); skipped"
fi

cd "$ROOT/trainer/generate" || exit 1
GOMLX_BACKEND=$EXACT step generate 120 "$B/generate.test" -test.v -test.count=1
tests generate
cd "$ROOT/trainer/train" || exit 1
GOMLX_BACKEND=$EXACT step train 240 "$B/train.test" -test.v -test.count=1
tests train
GOMLX_BACKEND=$CUDA step bench 240 "$B/train.test" -test.run '^$' -test.bench 'DPOStep|RefCacheEpoch/h256' -test.benchtime 1x -test.v
grep -E 'bench_test.go' "$LOGS/bench.log" 2>/dev/null | cut -c1-400 >>"$SUM"
finish

#!/usr/bin/env bash
# Trains the adapter files the serving tests and benchmarks use, from
# examples/serve/spam-quick.toml (a few steps each; needs `make assets`):
#
#   scripts/serve-adapters.sh OUT [MAX_LENGTH]     (default runs/serve, 64)
#
# into OUT/NAME.safetensors, with each run's log as OUT/NAME.log.jsonl (the
# metrics GET /v1/tasks shows):
#   spam-adapters    Houlsby adapters m = 64 with LayerNorms   (seed 1)
#   spam-layernorm   LayerNorms only                            (seed 2)
#   spam-head        head only                                  (seed 3)
#   bench/bench-1..bench-4  adapters m = 64 without LayerNorms (seeds 11..14):
#                    the benchmark's four tasks (scripts/bench-serve.sh), which
#                    AdapterHub can serve too (it has no per-task LayerNorms of
#                    the base model); SERVE_ADAPTERS_BENCH=0 skips them
# The serving equality test (cmd/train-gpu, TestServeMatchesPredict) trains
# the first three the same way itself, unless HOULSBY_SERVE_ADAPTERS names a
# folder this script filled.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/serve}"
LEN="${2:-64}"
GO=${GO:-go}
mkdir -p "$OUT" build
"$GO" build -o build/train-gpu ./cmd/train-gpu
train() { # folder, name, then flags
  local to=$1 name=$2; shift 2
  local dir="$OUT/runs/$name"
  rm -rf "$dir"
  mkdir -p "$to"
  if ! ./build/train-gpu train -c examples/serve/spam-quick.toml --output "$dir" --set "model.max_length=$LEN" "$@" >"$OUT/runs/$name.out" 2>&1; then
    cat "$OUT/runs/$name.out"
    exit 1
  fi
  cp "$dir/adapter.safetensors" "$to/$name.safetensors"
  cp "$dir/log.jsonl" "$to/$name.log.jsonl"
  echo "serve-adapters: $to/$name.safetensors"
}
mkdir -p "$OUT/runs"
train "$OUT" spam-adapters --strategy adapters --seed 1
train "$OUT" spam-layernorm --strategy layernorm --seed 2
train "$OUT" spam-head --strategy head --seed 3
if [ "${SERVE_ADAPTERS_BENCH:-1}" = 1 ]; then
  for i in 1 2 3 4; do
    train "$OUT/bench" "bench-$i" --strategy adapters --set adapter.train_layernorm=false --seed "1$i"
  done
fi

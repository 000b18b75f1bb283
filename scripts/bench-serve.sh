#!/usr/bin/env bash
# The serving benchmark of docs/benchmarks.md: train-gpu serve against the
# Python baseline (tests/ref/serve_adapterhub.py: transformers + AdapterHub
# on PyTorch, BatchSplit), both serving the same four adapter files on this
# machine's CPU with 2 threads, driven by the same train-gpu loadgen runs:
#
#   scripts/bench-serve.sh [SECONDS] [CLIENTS] [INPUTS] [REPS]   (default 40 16 2 3)
#
# For each repetition it runs, one after the other, mixed traffic over the
# four tasks and single-task traffic (bench-1), against Go, then against
# Python, each for SECONDS with CLIENTS concurrent clients sending INPUTS
# texts of the SpamAssassin test split per request (max length 128); odd
# repetitions run mixed first, even ones single first, so that a drift in
# the machine's load does not favour one traffic. The summary gives every
# run and the medians over the repetitions.
# Both servers run throughout (an idle one uses no CPU). Besides loadgen's
# throughput and latency it records each server's CPU time during the run
# (/proc/PID/stat), a measure that other processes on the machine disturb
# far less than wall-clock throughput, and the load average.
# Needs `make assets` and `make ref-env`; trains the adapters with
# scripts/serve-adapters.sh when runs/serve/bench is missing.
# Results: build/bench-serve/ (JSON per run, summary.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-40}"; CLIENTS="${2:-16}"; INPUTS="${3:-2}"; REPS="${4:-3}"
GO=${GO:-go}
PY="${VENV:-.venv-ref}/bin/python"
MODEL=build/assets/all-MiniLM-L6-v2
DATA=build/assets/spam/test.jsonl
ADAPTERS=runs/serve/bench
OUT=build/bench-serve
GOPORT=18080; PYPORT=18090
mkdir -p "$OUT"
"$GO" build -o build/train-gpu ./cmd/train-gpu
[ -f "$ADAPTERS/bench-4.safetensors" ] || bash scripts/serve-adapters.sh runs/serve 64

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
GOMAXPROCS=2 ./build/train-gpu serve --model "$MODEL" --adapters "$ADAPTERS" --addr 127.0.0.1:$GOPORT \
  --device cpu --max-length 128 --max-batch-rows 32 --max-batch-tokens 4096 --max-wait 2ms 2>"$OUT/go-serve.log" &
pids+=($!); GOPID=$!
OMP_NUM_THREADS=2 "$PY" tests/ref/serve_adapterhub.py --model "$MODEL" --adapters "$ADAPTERS" --port $PYPORT \
  --threads 2 --max-length 128 --max-batch-rows 32 --max-batch-tokens 4096 --max-wait 0.002 2>"$OUT/py-serve.log" &
pids+=($!); PYPID=$!
for port in $GOPORT $PYPORT; do
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/v1/tasks" >/dev/null && break; sleep 1; done
done

# Both servers answer alike (the baseline computes the same model).
req='{"task": "bench-3", "inputs": ["WIN a FREE cruise, click now", "Meeting moved to 3pm, see the agenda attached"]}'
curl -s "http://127.0.0.1:$GOPORT/v1/predict" -d "$req" >"$OUT/parity-go.json"
curl -s "http://127.0.0.1:$PYPORT/v1/predict" -d "$req" >"$OUT/parity-py.json"

cpu_s() { # utime + stime of a process, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
run() { # name port pid tasks
  local name=$1 port=$2 pid=$3 tasks=$4
  local c0 l0 c1 l1
  c0=$(cpu_s "$pid"); l0=$(cut -d' ' -f1 /proc/loadavg)
  ./build/train-gpu loadgen --url "http://127.0.0.1:$port" --data "$DATA" --tasks "$tasks" --clients "$CLIENTS" \
    --inputs "$INPUTS" --duration "${SECS}s" --json "$OUT/$name.json" >"$OUT/$name.txt" || true  # errors are in the table
  c1=$(cpu_s "$pid"); l1=$(cut -d' ' -f1 /proc/loadavg)
  echo "{\"cpu_s\": $(awk -v a="$c1" -v b="$c0" 'BEGIN{print a - b}'), \"load_start\": $l0, \"load_end\": $l1}" >"$OUT/$name.cpu.json"
  echo "bench-serve: $name: $(sed -n 3p "$OUT/$name.txt")"
}
MIXED=bench-1,bench-2,bench-3,bench-4
echo "bench-serve: warm-up"
./build/train-gpu loadgen --url http://127.0.0.1:$GOPORT --data "$DATA" --clients "$CLIENTS" --inputs "$INPUTS" --duration 10s >/dev/null
./build/train-gpu loadgen --url http://127.0.0.1:$PYPORT --data "$DATA" --clients "$CLIENTS" --inputs "$INPUTS" --duration 10s >/dev/null
for r in $(seq "$REPS"); do
  if [ $((r % 2)) = 1 ]; then
    run "go-mixed-$r" $GOPORT $GOPID $MIXED
    run "go-single-$r" $GOPORT $GOPID bench-1
    run "py-mixed-$r" $PYPORT $PYPID $MIXED
    run "py-single-$r" $PYPORT $PYPID bench-1
  else
    run "go-single-$r" $GOPORT $GOPID bench-1
    run "go-mixed-$r" $GOPORT $GOPID $MIXED
    run "py-single-$r" $PYPORT $PYPID bench-1
    run "py-mixed-$r" $PYPORT $PYPID $MIXED
  fi
done
{
  echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs, $(go version | cut -d' ' -f3)"
  echo "python: $("$PY" -c 'import torch, transformers, adapters; print("torch", torch.__version__, "transformers", transformers.__version__, "adapters", adapters.__version__)')"
  echo "load: ${SECS}s per run, $CLIENTS clients, $INPUTS inputs per request, texts of $DATA, max length 128"
} >"$OUT/summary.md"
python3 - "$OUT" "$REPS" >>"$OUT/summary.md" <<'EOF'
import json, sys
out, reps = sys.argv[1], int(sys.argv[2])
print()
print("| run | inputs/s | requests/s | p50 ms | p95 ms | p99 ms | errors | server CPU-s per input | load avg (start, end) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for r in range(1, reps + 1):
    for name in ("go-mixed", "go-single", "py-mixed", "py-single"):
        j = json.load(open(f"{out}/{name}-{r}.json"))
        c = json.load(open(f"{out}/{name}-{r}.cpu.json"))
        lat = j["latency_ms"]
        n = j["ok"] * j["inputs_per_request"]
        print(f"| {name}-{r} | {j['inputs_per_s']:.2f} | {j['requests_per_s']:.2f} | {lat.get('p50', 0):.0f} | {lat.get('p95', 0):.0f} | "
              f"{lat.get('p99', 0):.0f} | {j['sent'] - j['ok']} | {c['cpu_s'] / max(n, 1):.4f} | {c['load_start']}, {c['load_end']} |")
def med(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
agg = {}
for name in ("go-mixed", "go-single", "py-mixed", "py-single"):
    runs = [json.load(open(f"{out}/{name}-{r}.json")) for r in range(1, reps + 1)]
    cpus = [json.load(open(f"{out}/{name}-{r}.cpu.json"))["cpu_s"] for r in range(1, reps + 1)]
    agg[name] = {
        "inputs/s": med([j["inputs_per_s"] for j in runs]),
        "cpu/input": med([c / max(j["ok"] * j["inputs_per_request"], 1) for c, j in zip(cpus, runs)]),
        **{q: med([j["latency_ms"].get(q, 0) for j in runs]) for q in ("p50", "p95", "p99")},
    }
print(f"\nmedians over {reps} repetition(s):\n")
print("| traffic | inputs/s | p50 ms | p95 ms | p99 ms | server CPU-s per input |")
print("|---|---:|---:|---:|---:|---:|")
for name, a in agg.items():
    print(f"| {name} | {a['inputs/s']:.2f} | {a['p50']:.0f} | {a['p95']:.0f} | {a['p99']:.0f} | {a['cpu/input']:.4f} |")
gm, gs, pm, ps = (agg[k] for k in ("go-mixed", "go-single", "py-mixed", "py-single"))
print(f"\nGo mixed / Go single: {gm['inputs/s'] / gs['inputs/s']:.2f}x by throughput, {gs['cpu/input'] / gm['cpu/input']:.2f}x by CPU per input")
print(f"Go mixed / Python mixed: {gm['inputs/s'] / pm['inputs/s']:.2f}x by throughput, {pm['cpu/input'] / gm['cpu/input']:.2f}x by CPU per input")
print(f"Go single / Python single: {gs['inputs/s'] / ps['inputs/s']:.2f}x by throughput, {ps['cpu/input'] / gs['cpu/input']:.2f}x by CPU per input")
g = json.load(open(f"{out}/parity-go.json"))["predictions"]
p = json.load(open(f"{out}/parity-py.json"))["predictions"]
d = max(abs(a["probabilities"][k] - b["probabilities"][k]) for a, b in zip(g, p) for k in a["probabilities"])
print(f"\nparity: Go and Python probabilities for bench-3 on two texts differ by at most {d:.2g}")
EOF
cat "$OUT/summary.md"

#!/usr/bin/env bash
# `make gpu-bundle`: everything a GPU check needs, built here (the CUDA
# toolkit, no GPU), in one folder under the 64 MiB a lent GPU machine
# accepts: build/gpu-bundle/ (docs/gpu-status.md, "Verify on a GPU").
#
#   bin/train-gpu.gz       the CPU build (static, CGO_ENABLED=0): the program users run
#   bin/train-gpu-cuda.gz  the CUDA build it hands GPU jobs to
#   bin/gpu.test.gz        go test -tags cuda -c ./gpu  (conformance, model step, benchmarks)
#   bin/cuda.test.gz       go test -tags cuda -c ./cuda (the driver layer)
#                          (gzip -9: 62 MB of binaries travel as 23 MB; gpu-verify.sh
#                          unpacks them next to the .gz files before its first part)
#   ptx/*.ptx              the kernels as embedded in the CUDA binaries
#   assets/minilm-slice/   2 layers of all-MiniLM-L6-v2, bf16, vocabulary cut to the shipped rows
#   assets/spam/           400 training and 96 validation SpamAssassin rows
#   assets/run200.toml     the 200-step run; cpu_curve.json its CPU loss curve,
#                          cpu_curve_20.json the curve of its first 20 steps alone
#                          (--max-steps 20, what a rehearsal reruns)
#   verify/                verify.py (parsers, comparisons, report), make_random_bert.py,
#                          bench_torch_gpu.py (the PyTorch baseline), graph_symbols.txt
#                          (the driver entry points cuda/graph.go resolves at run time)
#   gpu-verify.sh          the one command: bash gpu-verify.sh [--out FILE] [--rehearse]
#   MANIFEST.json          commit, date, toolchains, every file's size and sha256
#
#   scripts/gpu-bundle.sh [OUT]   (default build/gpu-bundle)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=${1:-build/gpu-bundle}
limit=$((64 * 1024 * 1024))
t0=$(date +%s)
step() { echo "--- gpu-bundle: $* ($(($(date +%s) - t0))s)"; }

if ! source scripts/cuda-env.sh; then
	echo "gpu-bundle: $cuda_env_missing (scripts/install-cuda.sh or make cuda-check installs the toolkit)" >&2
	exit 1
fi
for f in build/assets/all-MiniLM-L6-v2/model.safetensors build/assets/spam/train.jsonl; do
	[ -e "$f" ] || { echo "gpu-bundle: $f is missing: run make assets" >&2; exit 1; }
done
tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/ptx" "$tmp/assets" "$tmp/verify"

step "PTX"
bash scripts/ptx.sh >/dev/null
ls kernels/ptx/*.ptx >/dev/null 2>&1 || { echo "gpu-bundle: make ptx produced no PTX" >&2; exit 1; }
cp kernels/ptx/*.ptx "$tmp/ptx/"

step "binaries (stripped: -s -w)"
CGO_ENABLED=0 $GO build -ldflags="-s -w" -o "$tmp/bin/train-gpu" ./cmd/train-gpu
$GO build -tags cuda -ldflags="-s -w" -o "$tmp/bin/train-gpu-cuda" ./cmd/train-gpu
$GO test -tags cuda -c -ldflags="-s -w" -o "$tmp/bin/gpu.test" ./gpu
$GO test -tags cuda -c -ldflags="-s -w" -o "$tmp/bin/cuda.test" ./cuda

step "assets"
$GO run ./scripts/bundle-assets -out "$tmp/assets"
cp scripts/gpu-verify/run200.toml "$tmp/assets/"
cp scripts/gpu-verify/gpu-verify.sh "$tmp/"
cp scripts/gpu-verify/verify.py scripts/gpu-verify/make_random_bert.py tests/ref/bench_torch_gpu.py "$tmp/verify/"
# The driver entry points cuda/graph.go resolves at run time, for the GPU
# machine's environment part to check against its driver.
grep -o 'GRAPH_SYM([a-z_]*, "[A-Za-z_0-9]*")' cuda/graph.go | sed 's/.*"\(.*\)")/\1/' >"$tmp/verify/graph_symbols.txt"

step "the CPU loss curves (200 steps, and the first 20 alone)"
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
(cd "$tmp" && bin/train-gpu train -c assets/run200.toml --device cpu --output "$runs/cpu200" >"$runs/cpu200.out" 2>&1) ||
	{ tail -n 20 "$runs/cpu200.out" >&2; exit 1; }
(cd "$tmp" && bin/train-gpu train -c assets/run200.toml --device cpu --max-steps 20 --output "$runs/cpu20" >"$runs/cpu20.out" 2>&1) ||
	{ tail -n 20 "$runs/cpu20.out" >&2; exit 1; }
python3 scripts/gpu-verify/verify.py curve "$runs/cpu200/log.jsonl" >"$tmp/assets/cpu_curve.json"
python3 scripts/gpu-verify/verify.py curve "$runs/cpu20/log.jsonl" >"$tmp/assets/cpu_curve_20.json"
grep -E '^(trained|validation)' "$runs/cpu200.out" | sed 's/^/gpu-bundle: CPU run: /'

# The binaries travel compressed: stripped, the four come to about 62 MB,
# gzipped to about 23 MB, which leaves room under the 64 MiB for the assets.
gzip -9 -n "$tmp"/bin/*

step "manifest and size"
commit=$(git rev-parse HEAD)
dirty=false
[ -n "$(git status --porcelain --untracked-files=no)" ] && dirty=true
python3 - "$tmp" "$commit" "$dirty" "$($GO version)" "$(nvcc --version | tail -n 1)" <<'PY'
import hashlib, json, os, sys, time
root, commit, dirty, gov, nvcc = sys.argv[1:]
files = {}
for d, _, names in os.walk(root):
    for n in sorted(names):
        p = os.path.join(d, n)
        with open(p, "rb") as f:
            files[os.path.relpath(p, root)] = {"bytes": os.path.getsize(p), "sha256": hashlib.sha256(f.read()).hexdigest()}
m = {"commit": commit, "dirty": dirty == "true", "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
     "go": gov, "nvcc": nvcc, "size_bytes": sum(f["bytes"] for f in files.values()), "files": dict(sorted(files.items()))}
with open(os.path.join(root, "MANIFEST.json"), "w") as f:
    json.dump(m, f, indent=1)
    f.write("\n")
PY
size=$(du -sb "$tmp" | cut -f1)
du -sh "$tmp"/* | sed 's/^/gpu-bundle: /'
if [ "$size" -gt "$limit" ]; then
	echo "gpu-bundle: $size bytes: over the 64 MiB ($limit bytes) a GPU machine accepts" >&2
	exit 1
fi
rm -rf "$out"
mv "$tmp" "$out"
step "done: $out, $size bytes ($((size * 100 / limit))% of 64 MiB), commit $commit$([ "$dirty" = true ] && echo ' (with uncommitted changes)')"

#!/usr/bin/env bash
# gpu-verify.sh: verifies the CUDA path of houlsby/adapters on a GPU machine
# in at most 8 minutes and writes ONE results file (JSON, schema
# houlsby-gpu-verify/1). It runs from the unpacked bundle of
# `make gpu-bundle` and needs no Go, no network and no build: bash,
# coreutils (timeout), python3 (PyTorch for the PyTorch parts), and the
# NVIDIA driver.
#
#   bash gpu-verify.sh [--out FILE] [--only PART,PART...] [--rehearse]
#
#   --out FILE   the results file (default: gpu-results.json next to this script)
#   --only LIST  run only these parts (the others are recorded as skipped)
#   --rehearse   on a machine without a GPU: run every part's harness with the
#                CPU build or to the expected no-GPU outcome, and still write
#                the results file (what `make gpu-rehearse` and CI do)
#
# Parts, in order (name, time limit in seconds, what):
#   environment              15  date, host, nvidia-smi, driver, glibc, unresolved driver symbols, bundle
#   dispatch                 60  bin/train-gpu probe --json: the CPU build hands off to bin/train-gpu-cuda
#   driver                   45  bin/cuda.test: the driver layer; launch and round-trip cost
#   conformance_f32          60  bin/gpu.test TestConformanceGPUF32
#   conformance_bf16         60  bin/gpu.test TestConformanceGPUBF16
#   model_step               45  bin/gpu.test TestModelMatchesCPUOnGPU on assets/minilm-slice
#   train200_f32             45  200 steps (assets/run200.toml) on the GPU in F32 against assets/cpu_curve.json
#   train200_bf16            45  the same in BF16
#   train200_graphs          45  the F32 run with CUDA Graphs: identical losses
#   kernels                  75  bin/gpu.test BenchmarkOp, BenchmarkGemmCuBLAS, BenchmarkLaunchOverhead
#   bert_base_ours           60  train-gpu bench on a random BERT-base (B=32, T=128, m=64), without and with graphs
#   bert_base_torch_eager    60  verify/bench_torch_gpu.py: the same step in PyTorch eager, bf16 autocast
#   bert_base_torch_compile 150  the same with torch.compile
# Each part runs under `timeout` with min(its limit, what is left of the
# budget, GPU_VERIFY_BUDGET = 460 s by default), so a hang costs one part
# and the whole run stays under 8 minutes; the parts come in order of
# importance.
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

here=$(cd "$(dirname "$0")" && pwd)
mode=gpu
out="$here/gpu-results.json"
only=""
while [ $# -gt 0 ]; do
	case "$1" in
	--rehearse) mode=rehearsal ;;
	--out) out=$2; shift ;;
	--only) only=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "gpu-verify: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
cd "$here"
budget=${GPU_VERIFY_BUDGET:-460}
PY=${GPU_VERIFY_PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-verify.XXXXXX")
t0=$(date +%s)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# The bundle carries its binaries gzipped (scripts/gpu-bundle.sh): unpack them
# into the work folder, so the bundle itself stays as it travelled (and under
# the 64 MiB) after a run. The CPU build finds the CUDA build next to it.
BIN="$work/bin"
mkdir -p "$BIN"
for gz in bin/*.gz; do
	[ -e "$gz" ] || { echo "gpu-verify: no bin/*.gz in $here: is this a bundle from make gpu-bundle?" >&2; exit 1; }
	b="$BIN/$(basename "${gz%.gz}")"
	gunzip -c "$gz" >"$b" && chmod +x "$b" || { echo "gpu-verify: cannot unpack $gz into $BIN" >&2; exit 1; }
done
export mode here work PY BIN
# The driver JIT-compiles
# the PTX once and caches it for the later processes.
export CUDA_CACHE_MAXSIZE=${CUDA_CACHE_MAXSIZE:-1073741824}
echo "gpu-verify: $mode run, work folder $work, budget ${budget}s, results to $out"

# run_part NAME LIMIT FUNCTION: FUNCTION's output goes to $work/NAME.log,
# its exit status, time and limit to $work/parts.tsv.
run_part() {
	local name=$1 limit=$2 fn=$3
	if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then
		printf '%s\t-1\t0\t%s\tskipped: not in --only\n' "$name" "$limit" >>"$work/parts.tsv"
		return
	fi
	local left=$((budget - ($(date +%s) - t0)))
	if [ "$left" -lt 10 ]; then
		printf '%s\t-1\t0\t%s\tskipped: the %ss budget is spent\n' "$name" "$limit" "$budget" >>"$work/parts.tsv"
		echo "gpu-verify: $name skipped (budget spent)"
		return
	fi
	[ "$limit" -gt "$left" ] && limit=$left
	mkdir -p "$work/$name"
	local s e rc
	s=$(date +%s.%N)
	PART_DIR="$work/$name" timeout -k 5 "$limit" bash -c "$fn" >"$work/$name.log" 2>&1
	rc=$?
	e=$(date +%s.%N)
	printf '%s\t%s\t%s\t%s\tran\n' "$name" "$rc" "$(awk -v a="$s" -v b="$e" 'BEGIN{print b-a}')" "$limit" >>"$work/parts.tsv"
	echo "gpu-verify: $name exit $rc ($(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.1f", b-a}')s of ${limit}s)"
}

part_environment() {
	echo "=== date"; date -u +%Y-%m-%dT%H:%M:%SZ
	echo "=== host"; uname -a; hostname
	echo "=== nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,pcie.link.gen.max --format=csv 2>&1 || echo "no nvidia-smi"
	echo "=== nvidia-smi -L"; nvidia-smi -L 2>&1 || true
	echo "=== glibc"; ldd --version 2>&1 | head -n 1
	echo "=== driver symbols the CUDA build references but libcuda.so.1 lacks (lazily bound: only a call would fail)"
	ldd -r "$BIN"/train-gpu-cuda 2>&1 | grep -i "undefined symbol" | sed 's/(.*//' | sort -u | head -n 50 || true
	echo "=== CUDA Graph entry points (verify/graph_symbols.txt) the driver lacks"
	lib=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 / && !found {print $NF; found = 1}')
	if [ -n "$lib" ]; then
		exported=$(nm -D --defined-only "$lib" 2>/dev/null | awk '{print $3}')
		for s in $(cat verify/graph_symbols.txt); do grep -qx "$s" <<<"$exported" || echo "$s"; done
	else
		echo "no libcuda.so.1 in the loader cache"
	fi
	echo "=== python"; "$PY" -c 'import sys; print(sys.version.split()[0])' 2>&1
	echo "=== torch"; "$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -n 1
	echo "=== nvcc"; (nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version 2>/dev/null) | tail -n 2
	echo "=== bundle"; cat MANIFEST.json
	echo "=== verify.py selftest"; "$PY" verify/verify.py selftest
}

part_dispatch() {
	# In a rehearsal the driver check is skipped, so that the probe really
	# starts the CUDA build (which stops at cuInit without a GPU).
	[ "$mode" = rehearsal ] && export TRAIN_GPU_SKIP_DRIVER_CHECK=1
	"$BIN"/train-gpu probe
	"$BIN"/train-gpu probe --json
}

part_driver() {
	"$BIN"/cuda.test -test.v -test.run . -test.timeout 40s || return 1
	"$BIN"/cuda.test -test.run '^$' -test.bench 'Launch|CallRoundTrip' -test.benchtime 20000x -test.benchmem
}
part_conformance_f32() { "$BIN"/gpu.test -test.v -test.run '^TestConformanceGPUF32$' -test.timeout 55s; }
part_conformance_bf16() { "$BIN"/gpu.test -test.v -test.run '^TestConformanceGPUBF16$' -test.timeout 55s; }
part_model_step() {
	GPU_TEST_MODEL_DIR=assets/minilm-slice "$BIN"/gpu.test -test.v -test.run '^TestModelMatchesCPUOnGPU$' -test.timeout 40s
}

# train_run [ENV...]: the bundle's run on the GPU through the one program
# (bin/train-gpu hands --device cuda to bin/train-gpu-cuda, both unpacked into $BIN).
train_run() {
	env "$@" "$BIN"/train-gpu train -c assets/run200.toml --device cuda --output "$PART_DIR/run"
}
part_train200_f32() {
	if [ "$mode" = rehearsal ]; then
		# The CPU build's first 20 steps must equal the shipped CPU curve's.
		"$BIN"/train-gpu train -c assets/run200.toml --device cpu --max-steps 20 --output "$PART_DIR/run" || return 1
		"$PY" verify/verify.py compare assets/cpu_curve_20.json "$PART_DIR/run/log.jsonl" exact >"$PART_DIR/compare.json"
		return
	fi
	train_run TRAIN_GPU_CUDA_PRECISION=f32 || return 1
	"$PY" verify/verify.py compare assets/cpu_curve.json "$PART_DIR/run/log.jsonl" f32 >"$PART_DIR/compare.json"
}
part_train200_bf16() {
	if [ "$mode" = rehearsal ]; then echo "rehearsal: the harness of train200_f32 with the bf16 criterion; needs a GPU"; return; fi
	train_run TRAIN_GPU_CUDA_PRECISION=bf16 || return 1
	"$PY" verify/verify.py compare assets/cpu_curve.json "$PART_DIR/run/log.jsonl" bf16 >"$PART_DIR/compare.json"
}
part_train200_graphs() {
	if [ "$mode" = rehearsal ]; then echo "rehearsal: the harness of train200_f32 with TRAIN_GPU_CUDA_GRAPHS=1; needs a GPU"; return; fi
	train_run TRAIN_GPU_CUDA_PRECISION=f32 TRAIN_GPU_CUDA_GRAPHS=1 || return 1
	local f32="$work/train200_f32/run/log.jsonl"
	[ -f "$f32" ] || { echo "train200_f32 did not finish: nothing to compare with"; return 1; }
	"$PY" verify/verify.py curve "$f32" >"$PART_DIR/f32_curve.json"
	"$PY" verify/verify.py compare "$PART_DIR/f32_curve.json" "$PART_DIR/run/log.jsonl" exact >"$PART_DIR/compare.json"
}
part_kernels() {
	"$BIN"/gpu.test -test.run '^$' -test.bench 'BenchmarkOp|BenchmarkGemmCuBLAS|BenchmarkLaunchOverhead' -test.benchtime 30x -test.timeout 70s
}
part_bert_base_ours() {
	if [ "$mode" = rehearsal ]; then
		"$PY" verify/make_random_bert.py --shape smoke --out "$PART_DIR/bert" || return 1
		"$BIN"/train-gpu bench --model "$PART_DIR/bert" --device cpu --batch-size 2 --seq-len 16 --steps 2
		return
	fi
	"$PY" verify/make_random_bert.py --shape bert-base --out "$PART_DIR/bert" || return 1
	"$BIN"/train-gpu bench --model "$PART_DIR/bert" --device cuda --batch-size 32 --seq-len 128 --steps 20 || return 1
	TRAIN_GPU_CUDA_GRAPHS=1 "$BIN"/train-gpu bench --model "$PART_DIR/bert" --device cuda --batch-size 32 --seq-len 128 --steps 20
}
has_torch() { "$PY" -c 'import torch' >/dev/null 2>&1 || { echo "no torch: $PY cannot import torch"; return 1; }; }
part_bert_base_torch_eager() {
	has_torch || return 0
	if [ "$mode" = rehearsal ]; then "$PY" verify/bench_torch_gpu.py --smoke; return; fi
	"$PY" verify/bench_torch_gpu.py --shape bert-base --batch 32 --seq 128 --steps 20 --warmup 5
}
part_bert_base_torch_compile() {
	if [ "$mode" = rehearsal ]; then echo "rehearsal: torch.compile is not run on the CPU (inductor takes minutes on a small machine); needs a GPU"; return; fi
	has_torch || return 0
	"$PY" verify/bench_torch_gpu.py --shape bert-base --batch 32 --seq 128 --steps 20 --warmup 3 --compile
}
export -f train_run has_torch part_environment part_dispatch part_driver part_conformance_f32 part_conformance_bf16 \
	part_model_step part_train200_f32 part_train200_bf16 part_train200_graphs part_kernels part_bert_base_ours \
	part_bert_base_torch_eager part_bert_base_torch_compile

run_part environment 15 part_environment
run_part dispatch 60 part_dispatch
run_part driver 45 part_driver
run_part conformance_f32 60 part_conformance_f32
run_part conformance_bf16 60 part_conformance_bf16
run_part model_step 45 part_model_step
run_part train200_f32 45 part_train200_f32
run_part train200_bf16 45 part_train200_bf16
run_part train200_graphs 45 part_train200_graphs
run_part kernels 75 part_kernels
run_part bert_base_ours 60 part_bert_base_ours
run_part bert_base_torch_eager 60 part_bert_base_torch_eager
run_part bert_base_torch_compile 150 part_bert_base_torch_compile

finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
elapsed=$(($(date +%s) - t0))
gpu_line=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | sed -n 1p)
host_json=$(printf '{"hostname": "%s", "kernel": "%s", "nvidia_smi": "%s"}' "$(hostname)" "$(uname -r)" "${gpu_line:-none}")
printf '{"started": "%s", "finished": "%s", "elapsed_s": %s, "budget_s": %s, "bundle": %s, "host": %s}\n' \
	"$started" "$finished" "$elapsed" "$budget" "$(cat MANIFEST.json)" "$host_json" >"$work/meta.json"
if "$PY" verify/verify.py report "$work" "$out" "$mode"; then
	echo "gpu-verify: done in ${elapsed}s; logs in $work"
	exit 0
fi
# Without a working python3: the part statuses only, still one JSON file.
{
	printf '{"schema": "houlsby-gpu-verify/1", "mode": "%s", "error": "verify.py report failed: raw exit statuses only", "parts": [' "$mode"
	awk -F'\t' '{printf "%s{\"name\": \"%s\", \"rc\": %s, \"seconds\": %s, \"note\": \"%s\"}", (NR>1?", ":""), $1, $2, $3, $5}' "$work/parts.tsv"
	printf ']}\n'
} >"$out"
echo "gpu-verify: the report failed; raw statuses in $out, logs in $work" >&2
exit 1

#!/usr/bin/env bash
# make bench: GEMM throughput of our CPU sgemm against numpy/OpenBLAS on the
# BERT and adapter shapes of BenchmarkGemm (cpu_fallback/gemm_bench_test.go).
#
# Method: the Go benchmark binary is built once; then, REPS times, every
# shape is run by ours and immediately after by numpy, so load from other
# processes on this shared machine hits both alike. Each run times ITERS
# calls after one warm-up call (ITERS scales with the shape so a run lasts
# about half a second at ~80 GFLOP/s). The table gives the median over the
# REPS runs, with min-max.
#
# Environment: REPS (default 5), PY (default .venv-ref/bin/python; without
# it only ours runs), SHAPES (space-separated subset, default all),
# BENCH_BIN (a prebuilt `go test -c` binary of ./cpu_fallback to use).
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the numpy runs only,
# so OpenBLAS picks its kernel from the CPU (printed from threadpoolctl).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
PY=${PY:-.venv-ref/bin/python}
OUT=build/bench
mkdir -p "$OUT"

ALL_SHAPES="4096x384x384_NT 4096x1536x384_NT 4096x384x1536_NT 4096x768x768_NT 4096x3072x768_NT 4096x768x3072_NT
4096x384x1536_NN 4096x768x768_NN 4096x768x3072_NN 4096x3072x768_NN
384x1536x4096_TN 768x768x4096_TN 3072x768x4096_TN 768x3072x4096_TN
4096x64x768_NT 4096x768x64_NT 4096x768x64_NN 4096x64x768_NN 64x768x4096_TN 768x64x4096_TN"
SHAPES=${SHAPES:-$ALL_SHAPES}

BIN=${BENCH_BIN:-$OUT/cpu.test}
if [ -z "${BENCH_BIN:-}" ]; then
  go test -c -o "$BIN" ./cpu_fallback
fi

have_py=0
if [ -x "$PY" ] && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" -c 'import numpy, threadpoolctl' 2>/dev/null; then
  have_py=1
else
  echo "bench: $PY with numpy+threadpoolctl not found; timing ours only (make ref-env)"
fi

echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs, GOMAXPROCS=${GOMAXPROCS:-$(nproc)}, $(go version | cut -d' ' -f3)"
echo "env: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>} (both unset for the numpy runs)"
if [ $have_py = 1 ]; then
  echo "numpy BLAS (threadpoolctl): $(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" scripts/bench_gemm.py --info | tr '\n' ' ')"
fi

# FP32 peak: measured FMA throughput (see docs/benchmarks.md).
"$BIN" -test.run '^$' -test.bench '^BenchmarkFMAPeak$' -test.benchtime 200x 2>/dev/null |
  awk '/GFLOP/ {for (i = 1; i < NF; i++) { if ($(i+1) == "GFLOP/s") w = $i; if ($(i+1) == "GFLOP/cpu-s") c = $i }
              printf "FMA peak %-28s %8.1f GFLOP/s wall, %8.1f GFLOP/cpu-s\n", $1, w, c}' || true

res="$OUT/gemm.tsv"
: >"$res"
for rep in $(seq 1 "$REPS"); do
  for s in $SHAPES; do
    IFS=x read -r m n k <<<"${s%_*}"
    iters=$(( 40000000000 / (2 * m * n * k) ))
    iters=$(( iters < 3 ? 3 : (iters > 200 ? 200 : iters) ))
    ours=$("$BIN" -test.run '^$' -test.bench "^BenchmarkGemm\$/^cpu\$/^${s}\$" -test.benchtime "${iters}x" |
      awk '{w = c = ""; for (i = 1; i < NF; i++) { if ($(i+1) == "GFLOP/s") w = $i; if ($(i+1) == "GFLOP/cpu-s") c = $i }
            if (w != "") print w, (c == "" ? "nan" : c)}')
    if [ -z "$ours" ]; then
      echo "bench: BenchmarkGemm/cpu/$s did not run (shape list out of sync with gemm_bench_test.go?)" >&2
      exit 1
    fi
    printf '%s\t%s\tours\t%s\n' "$rep" "$s" "${ours/ /$'\t'}" >>"$res"
    if [ $have_py = 1 ]; then
      ob=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" scripts/bench_gemm.py "$s" "$iters")
      printf '%s\t%s\topenblas\t%s\n' "$rep" "$s" "${ob/ /$'\t'}" >>"$res"
    fi
  done
  echo "bench: rep $rep/$REPS done" >&2
done

python3 - "$res" "$SHAPES" <<'PYEOF'
import math, statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
shapes = sys.argv[2].split()
def stats(shape, impl, col):
    v = sorted(float(r[col]) for r in rows if r[1] == shape and r[2] == impl and not math.isnan(float(r[col])))
    return (statistics.median(v), v[0], v[-1]) if v else None
label = {"NT": "fwd X·Wᵀ", "NN": "dX=dY·W", "TN": "dW=dYᵀ·X"}
fmt = lambda x: f"{x[0]:6.1f} ({x[1]:5.1f}-{x[2]:5.1f})" if x else f"{'-':>20}"
ratio = lambda o, b: f"{o[0] / b[0]:5.2f}" if o and b else f"{'-':>5}"
print("median (min-max) over the reps; wall = GFLOP/s by wall clock, cpu = GFLOP per CPU-second of the process")
print(f"| {'shape MxNxK_tAtB':<18} | {'case':<9} | {'ours wall':>20} | {'OpenBLAS wall':>20} | {'ratio':>5} | {'ours cpu':>20} | {'OpenBLAS cpu':>20} | {'ratio':>5} |")
print("|" + "|".join("-" * w for w in (20, 11, 22, 22, 7, 22, 22, 7)) + "|")
for s in shapes:
    ow, bw = stats(s, "ours", 3), stats(s, "openblas", 3)
    oc, bc = stats(s, "ours", 4), stats(s, "openblas", 4)
    print(f"| {s:<18} | {label[s[-2:]]:<9} | {fmt(ow):>20} | {fmt(bw):>20} | {ratio(ow, bw):>5} | {fmt(oc):>20} | {fmt(bc):>20} | {ratio(oc, bc):>5} |")
PYEOF

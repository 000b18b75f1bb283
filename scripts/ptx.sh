#!/usr/bin/env bash
# Compiles every kernels/*.cu to PTX in kernels/ptx/ (git-ignored), which
# package kernels/ptx embeds into cuda-tagged builds.
#
# Target: virtual architecture compute_80 (PTX only, no SASS). The driver
# JIT-compiles it at module load for the GPU it runs on, sm_80 (A100) and
# every newer one (sm_90 H100 included); bf16 wmma needs sm_80.
#
# Without nvcc this prints "nvcc not found: skipping PTX build" and exits 0,
# so `make ptx` is harmless on machines without the toolkit; with nvcc any
# compile error fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC=${NVCC:-}
if [ -z "$NVCC" ]; then
	if command -v nvcc >/dev/null 2>&1; then
		NVCC=$(command -v nvcc)
	elif [ -x /usr/local/cuda/bin/nvcc ]; then
		NVCC=/usr/local/cuda/bin/nvcc
	else
		echo "nvcc not found: skipping PTX build"
		exit 0
	fi
fi

ARCH=${PTX_ARCH:-compute_80}
out=kernels/ptx
mkdir -p "$out"

shopt -s nullglob
srcs=(kernels/*.cu)
if [ ${#srcs[@]} -eq 0 ]; then
	echo "ptx: no kernels/*.cu to compile"
	exit 0
fi

# Drop PTX whose source is gone, so a stale kernel cannot be embedded.
for p in "$out"/*.ptx; do
	b=$(basename "$p" .ptx)
	[ -f "kernels/$b.cu" ] || { echo "ptx: removing stale $p"; rm -f "$p"; }
done

echo "ptx: $("$NVCC" --version | tail -n 1) → $out (-arch=$ARCH)"
for src in "${srcs[@]}"; do
	name=$(basename "$src" .cu)
	dst="$out/$name.ptx"
	# Plain IEEE float math (no --use_fast_math): erf in the exact GELU and
	# expf in the softmax must match the CPU reference to the tolerances of
	# the conformance tests.
	"$NVCC" -ptx -arch="$ARCH" -std=c++17 -O3 -lineinfo -Ikernels \
		-o "$dst.tmp" "$src"
	mv "$dst.tmp" "$dst"
	echo "ptx: $src → $dst ($(grep -c '^\.visible \.entry' "$dst") kernels)"
done

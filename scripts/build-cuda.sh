#!/usr/bin/env bash
# `make build`'s second half: the CUDA build build/train-gpu-cuda, which
# build/train-gpu hands GPU jobs to (cmd/train-gpu/device.go). Needs the
# CUDA toolkit (nvcc, cuda.h, the stub libcuda), not a GPU; without the
# toolkit it says so and exits 0: the CPU build runs everywhere on its own.
#
#   scripts/build-cuda.sh [OUT] [go build flags...]   (OUT: build/train-gpu-cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=${1:-build/train-gpu-cuda}
shift || true
if ! source scripts/cuda-env.sh; then
	echo "build-cuda: no CUDA toolkit ($cuda_env_missing): $out not built; build/train-gpu runs on the CPU"
	exit 0
fi
bash scripts/ptx.sh >/dev/null
if ! ls kernels/ptx/*.ptx >/dev/null 2>&1; then
	echo "build-cuda: make ptx produced no kernels/ptx/*.ptx" >&2
	exit 1
fi
mkdir -p "$(dirname "$out")"
$GO build -tags cuda "$@" -o "$out" ./cmd/train-gpu
echo "build-cuda: built $out"

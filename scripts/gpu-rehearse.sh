#!/usr/bin/env bash
# `make gpu-rehearse`: runs the bundle's one command here, on a machine
# without a GPU (gpu-verify.sh --rehearse: each part's harness with the CPU
# build, or to the expected no-GPU stop at cuInit), then checks the results
# file against the schema (scripts/gpuverify). Needs `make gpu-bundle`
# first. PyTorch comes from .venv-ref when it exists (make ref-env).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
bundle=build/gpu-bundle
results=$PWD/build/gpu-rehearsal.json
[ -f "$bundle/gpu-verify.sh" ] || { echo "gpu-rehearse: $bundle is missing: run make gpu-bundle first" >&2; exit 1; }
py=python3
[ -x .venv-ref/bin/python ] && py=$PWD/.venv-ref/bin/python
GPU_VERIFY_PYTHON=$py bash "$bundle/gpu-verify.sh" --rehearse --out "$results"
GPU_VERIFY_RESULTS=$results $GO test -count=1 -v -run TestResultsFile ./scripts/gpuverify

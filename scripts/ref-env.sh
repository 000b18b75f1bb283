#!/usr/bin/env bash
# Creates (if missing) the Python reference environment VENV and installs the
# exact pins of tests/ref/requirements.txt. Idempotent: a stamp file inside
# the venv records the hash of the requirements; when it matches, nothing runs.
#
#   scripts/ref-env.sh [VENV]          (default .venv-ref)
#
# Environment: PYTHON (interpreter for a new venv, default python3),
# TORCH_INDEX (an extra package index for torch; default none: PyPI only, the
# only registry this project's machines and CI reach).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-ref}
REQ=tests/ref/requirements.txt
PYTHON=${PYTHON:-python3}
TORCH_INDEX=${TORCH_INDEX:-}
STAMP="$VENV/.ref-env.stamp"

want=$( (cat "$REQ"; echo "index=$TORCH_INDEX") | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "ref-env: $VENV is up to date with $REQ"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "ref-env: creating venv $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
fi

extra=()
if [ -n "$TORCH_INDEX" ]; then
  extra=(--extra-index-url "$TORCH_INDEX")
fi
n=$(grep -cvE '^\s*(#|$)' "$REQ")
echo "ref-env: installing $n pinned packages from $REQ (first run: several minutes)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${extra[@]}" -r "$REQ"

echo "ref-env: checking imports"
"$VENV/bin/python" - <<'PY'
import torch, transformers, tokenizers, sentence_transformers, adapters, numpy, safetensors
print("ref-env: torch", torch.__version__, "| transformers", transformers.__version__,
      "| tokenizers", tokenizers.__version__, "| adapters", adapters.__version__)
PY
echo "$want" > "$STAMP"
echo "ref-env: done ($VENV)"

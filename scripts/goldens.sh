#!/usr/bin/env bash
# Runs every tests/ref/gen_*.py (sorted) with the reference venv's python from
# the repository root. Each script writes its goldens into tests/golden/.
# Offline by construction: models load from build/assets (local folders) and
# the Hugging Face libraries are told never to reach a hub.
#
#   scripts/goldens.sh [VENV]          (default .venv-ref)
#
# Runs all generators even when one fails, then exits non-zero naming them.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-ref}
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  echo "goldens: no python in $VENV (run \`make ref-env\` first)" >&2
  exit 1
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0
mkdir -p tests/golden

shopt -s nullglob
gens=(tests/ref/gen_*.py)
if [ ${#gens[@]} -eq 0 ]; then
  echo "goldens: no tests/ref/gen_*.py found" >&2
  exit 1
fi
mapfile -t gens < <(printf '%s\n' "${gens[@]}" | LC_ALL=C sort)
failed=()
for g in "${gens[@]}"; do
  echo "goldens: $g"
  start=$(date +%s)
  if "$PY" "$g"; then
    echo "goldens: $g ok ($(( $(date +%s) - start ))s)"
  else
    echo "goldens: $g FAILED" >&2
    failed+=("$g")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "goldens: ${#failed[@]} generator(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "goldens: ${#gens[@]} generator(s) wrote tests/golden/"

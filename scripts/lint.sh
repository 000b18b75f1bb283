#!/usr/bin/env bash
# `make lint`: formatting, vet, staticcheck and a dead-code check.
#
#   gofmt -l .                 no file needs formatting
#   go vet ./...               the default (CPU) build
#   go mod tidy -diff          go.mod and go.sum are tidy
#   staticcheck ./...          honnef.co/go/tools, pinned below
#   deadcode -test ./...       golang.org/x/tools/cmd/deadcode, pinned below:
#                              functions no main, test or example reaches
#
# Build tags and architectures change what is reachable: copyRows16Go runs
# only off amd64, cuda.startThread only in the cuda build. deadcode therefore
# runs once per configuration and a function counts as dead only when it is
# dead in all of them. The cuda configuration needs the toolkit's cuda.h
# (scripts/install-cuda.sh; CI installs it first); without it the findings
# in the packages that have cuda-tagged files (cuda, gpu) are not reported
# and the script says so.
#
# The tools are installed into build/bin at the pinned versions from the Go
# module proxy on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
STATICCHECK_VERSION=v0.8.2 # honnef.co/go/tools 2026.2.2
XTOOLS_VERSION=v0.52.0     # golang.org/x/tools (deadcode)
BIN=$PWD/build/bin
mkdir -p "$BIN"

tool() { # name module version
	if [ ! -x "$BIN/$1" ] || [ "$(cat "$BIN/.$1.version" 2>/dev/null)" != "$3" ]; then
		echo "lint: installing $2@$3"
		GOBIN=$BIN GOFLAGS=-mod=mod $GO install "$2@$3"
		echo "$3" >"$BIN/.$1.version"
	fi
}

fail=0
out=$(gofmt -l . | grep -v '^build/' || true)
if [ -n "$out" ]; then
	echo "lint: gofmt needed:"
	echo "$out"
	fail=1
fi

echo "lint: go vet ./..."
$GO vet ./... || fail=1

echo "lint: go mod tidy -diff"
$GO mod tidy -diff || { echo "lint: go.mod/go.sum are not tidy (run go mod tidy)"; fail=1; }

cudainc=""
for d in /usr/include /usr/local/cuda/include; do
	[ -e "$d/cuda.h" ] && cudainc=$d && break
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# staticcheck's matrix mode merges "unused" findings over the configurations.
tool staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION"
{
	echo "default: GOARCH=amd64"
	echo "arm64: GOARCH=arm64"
	[ -n "$cudainc" ] && echo "cuda: CGO_ENABLED=1 CGO_CFLAGS=-I$cudainc GOARCH=amd64 -tags=cuda"
} >"$tmp/matrix"
echo "lint: staticcheck -matrix ($(cut -d: -f1 "$tmp/matrix" | tr '\n' ' '))"
if ! "$BIN/staticcheck" -matrix ./... <"$tmp/matrix" >"$tmp/sc"; then
	if [ -z "$cudainc" ]; then
		grep -vE '^(cuda|gpu)/.*U1000' "$tmp/sc" >"$tmp/sc2" || true
		mv "$tmp/sc2" "$tmp/sc"
	fi
	if [ -s "$tmp/sc" ]; then
		cat "$tmp/sc"
		fail=1
	fi
fi

tool deadcode golang.org/x/tools/cmd/deadcode "$XTOOLS_VERSION"
echo "lint: deadcode -test (default build)"
"$BIN/deadcode" -test ./... | sort >"$tmp/default"
echo "lint: deadcode -test (GOARCH=arm64: the pure-Go kernels)"
GOARCH=arm64 "$BIN/deadcode" -test ./... | sort >"$tmp/arm64"
comm -12 "$tmp/default" "$tmp/arm64" >"$tmp/dead"
if [ -n "$cudainc" ]; then
	echo "lint: deadcode -test -tags cuda (the CUDA build)"
	CGO_ENABLED=1 CGO_CFLAGS="-I$cudainc" "$BIN/deadcode" -test -tags cuda ./... | sort >"$tmp/cuda"
	comm -12 "$tmp/dead" "$tmp/cuda" >"$tmp/dead2" && mv "$tmp/dead2" "$tmp/dead"
else
	echo "lint: no cuda.h: the cuda configuration is skipped, and findings in cuda/ and gpu/ are not reported"
	grep -vE '^(cuda|gpu)/' "$tmp/dead" >"$tmp/dead2" || true
	mv "$tmp/dead2" "$tmp/dead"
fi
if [ -s "$tmp/dead" ]; then
	echo "lint: dead code (unreachable from every main, test and example, in every configuration):"
	cat "$tmp/dead"
	fail=1
fi

if [ "$fail" != 0 ]; then
	echo "lint: FAILED"
	exit 1
fi
echo "lint: ok"

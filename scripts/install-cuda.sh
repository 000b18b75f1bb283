#!/usr/bin/env bash
# Installs Debian's CUDA toolkit (nvidia-cuda-toolkit, CUDA 11.8 on Debian 12
# "bookworm"), which is enough to compile kernels/*.cu to PTX and to link the
# cuda-tagged Go binaries against the driver stub library. No GPU is needed.
#
# Idempotent: exits at once when nvcc is already on PATH (or in
# /usr/lib/nvidia-cuda-toolkit/bin). The toolkit lives in Debian's `non-free`
# component, so the script enables `contrib non-free non-free-firmware` on
# every Debian source, in either format:
#   - one-line:  /etc/apt/sources.list and /etc/apt/sources.list.d/*.list
#   - deb822:    /etc/apt/sources.list.d/*.sources (Debian 12's default
#                debian.sources)
# Needs root (or passwordless sudo).
set -euo pipefail

if command -v nvcc >/dev/null 2>&1; then
	echo "install-cuda: nvcc already installed: $(command -v nvcc)"
	nvcc --version | tail -n 2
	exit 0
fi
if [ -x /usr/lib/nvidia-cuda-toolkit/bin/nvcc ]; then
	echo "install-cuda: nvcc already installed: /usr/lib/nvidia-cuda-toolkit/bin/nvcc"
	exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "install-cuda: need root (or sudo) to install nvidia-cuda-toolkit" >&2
		exit 1
	fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-cuda: apt-get not found; install the CUDA toolkit (>= 11.8) by hand" >&2
	exit 1
fi

want="contrib non-free non-free-firmware"

# One-line format: append the missing components to every `deb`/`deb-src`
# line that points at a Debian archive.
fix_list() {
	local f=$1
	[ -f "$f" ] || return 0
	[ -e "/var/backups/$(basename "$f").bak-install-cuda" ] || $SUDO cp "$f" "/var/backups/$(basename "$f").bak-install-cuda" 2>/dev/null || true
	local tmp
	tmp=$(mktemp)
	awk -v want="$want" '
		/^[[:space:]]*deb(-src)?[[:space:]]/ && /debian/ {
			n = split(want, w, " ")
			for (i = 1; i <= n; i++) {
				if ($0 !~ ("[[:space:]]" w[i] "([[:space:]]|$)")) $0 = $0 " " w[i]
			}
		}
		{ print }
	' "$f" >"$tmp"
	$SUDO cp "$tmp" "$f"
	rm -f "$tmp"
}

# deb822 format: add the missing components to every `Components:` field of
# a stanza whose URIs point at a Debian archive.
fix_sources() {
	local f=$1
	[ -f "$f" ] || return 0
	[ -e "/var/backups/$(basename "$f").bak-install-cuda" ] || $SUDO cp "$f" "/var/backups/$(basename "$f").bak-install-cuda" 2>/dev/null || true
	local tmp
	tmp=$(mktemp)
	awk -v want="$want" '
		function flush(   i, n, w, line) {
			for (i = 1; i <= cnt; i++) {
				line = buf[i]
				if (debian && line ~ /^Components:/) {
					n = split(want, w, " ")
					for (j = 1; j <= n; j++) {
						if (line !~ ("[[:space:]]" w[j] "([[:space:]]|$)")) line = line " " w[j]
					}
				}
				print line
			}
			cnt = 0; debian = 0
		}
		/^[[:space:]]*$/ { flush(); print; next }
		{ buf[++cnt] = $0; if ($0 ~ /^URIs:.*debian/) debian = 1 }
		END { flush() }
	' "$f" >"$tmp"
	$SUDO cp "$tmp" "$f"
	rm -f "$tmp"
}

fix_list /etc/apt/sources.list
for f in /etc/apt/sources.list.d/*.list; do fix_list "$f"; done
for f in /etc/apt/sources.list.d/*.sources; do fix_sources "$f"; done

echo "install-cuda: apt-get update"
$SUDO apt-get update
echo "install-cuda: apt-get install nvidia-cuda-toolkit (large: about 3 GB unpacked)"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends nvidia-cuda-toolkit

if ! command -v nvcc >/dev/null 2>&1; then
	echo "install-cuda: nvidia-cuda-toolkit installed but nvcc is not on PATH" >&2
	exit 1
fi
nvcc --version | tail -n 2

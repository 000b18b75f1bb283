#!/usr/bin/env bash
# Measures train.cache_frozen: each run file of examples/cache/ is trained
# with the cache on and off (dropout off in the frozen layers both times);
# prints every epoch's wall time, the speed-up of the later epochs over the
# first, and checks that both runs wrote the same adapter file.
#
#   scripts/bench-cache.sh [RUN.toml ...]     (default: examples/cache/*.toml)
#
# Needs build/train-gpu (make build) and the assets (make assets).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/train-gpu
[ -x "$bin" ] || { echo "bench-cache: $bin missing (make build)" >&2; exit 1; }
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(examples/cache/*.toml)
echo "bench-cache: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p runs/bench-cache
for f in "${files[@]}"; do
	name=$(basename "$f" .toml)
	for cache in true false; do
		out=runs/bench-cache/$name-cache-$cache
		rm -rf "$out"
		"$bin" train -c "$f" --output "$out" --set train.cache_frozen=$cache >/dev/null 2>"$out.stderr" || { cat "$out.stderr" >&2; exit 1; }
		python3 - "$out/log.jsonl" "$name" "$cache" <<'PY'
import json, sys
secs = [r["seconds"] for r in map(json.loads, open(sys.argv[1])) if r.get("event") == "epoch"]
later = sum(secs[1:]) / max(1, len(secs) - 1)
print(f"{sys.argv[2]:8s} cache={sys.argv[3]:5s} epochs (s): " + " ".join(f"{s:7.1f}" for s in secs)
      + f"   first/later: {secs[0] / later:5.2f}x")
PY
	done
	if cmp -s "runs/bench-cache/$name-cache-true/adapter.safetensors" "runs/bench-cache/$name-cache-false/adapter.safetensors"; then
		echo "$name: adapter files identical with and without the cache"
	else
		echo "$name: adapter files DIFFER with and without the cache" >&2
		exit 1
	fi
done

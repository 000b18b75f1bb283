#!/usr/bin/env bash
# Runs the strategy comparison of docs/results.md, one run at a time, and
# prints its table (Markdown).
#
#   scripts/results.sh                 # build, then run adapters, head, full
#   scripts/results.sh head full       # only these runs (any examples/results/NAME.toml,
#                                      # e.g. the supplementary head-lr5e-2)
#   scripts/results.sh --table         # no runs: reprint the table from runs/results
#
# Each run is examples/results/NAME.toml (examples/spam.toml with another
# strategy/LR and output dir runs/results/NAME) under /usr/bin/time -v. Kept
# per run in runs/results/: NAME.out (the CLI's output), NAME.time (time -v),
# NAME.load (uptime before and after). Never run two at once: on 2 cores they
# would slow each other and the wall times would mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

R=runs/results
BIN=./build/train-gpu
ALL=(adapters head full head-lr5e-2 head-mean)

table_only=false
names=()
for a in "$@"; do
  case "$a" in
    --table) table_only=true ;;
    -*) echo "results.sh: unknown flag $a (want run names or --table)" >&2; exit 2 ;;
    *)
      if [ ! -f "examples/results/$a.toml" ]; then
        echo "results.sh: no run file examples/results/$a.toml" >&2; exit 2
      fi
      names+=("$a") ;;
  esac
done
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")

if [ ! -x /usr/bin/time ]; then
  echo "results.sh: /usr/bin/time is missing (apt-get install time): it measures wall, CPU and RSS" >&2
  exit 1
fi

if ! $table_only; then
  make build >&2
  mkdir -p "$R"
  for n in "${names[@]}"; do
    cfg=examples/results/$n.toml
    echo "results.sh: $n ($cfg) started $(date -u +%FT%TZ)" >&2
    uptime > "$R/$n.load"
    # The run's own failure is recorded, not fatal: the table shows it.
    if ! /usr/bin/time -v -o "$R/$n.time" "$BIN" train -c "$cfg" > "$R/$n.out" 2>&1; then
      echo "results.sh: $n FAILED, see $R/$n.out:" >&2
      tail -5 "$R/$n.out" >&2
    fi
    uptime >> "$R/$n.load"
    echo "results.sh: $n finished $(date -u +%FT%TZ)" >&2
  done
fi

# field FILE PATTERN: the value after "PATTERN: " in a /usr/bin/time -v file.
field() { sed -n "/^[[:space:]]*$2: /{s///;p;q}" "$1"; }
# score LINE_PREFIX NAME METRIC: a metric from the CLI's "validation:" / "test:" line.
score() {
  sed -n "/^$1:[[:space:]]*/{s///;p;q}" "$R/$2.out" |
    awk -v m="$3" '{for (i = 1; i < NF; i++) if ($i == m) {print $(i + 1); exit}}'
}
# load1 NAME LINE: the 1-minute load average from line LINE of NAME.load.
load1() { sed -n "${2}p" "$R/$1.load" | sed 's/.*load average: //' | cut -d, -f1; }

echo "| strategy | LR | trained params | val acc | val F1 | val MCC | test acc | test F1 | test MCC | wall | CPU (user+sys) | max RSS | adapter.safetensors | checkpoint.safetensors | hf-model/ | load 1-min before/after |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for n in "${names[@]}"; do
  out=$R/$n.out
  tf=$R/$n.time
  if [ ! -f "$out" ] || [ ! -f "$tf" ]; then
    echo "| $n | not run | | | | | | | | | | | | | | |"
    continue
  fi
  lr=$(sed -n '/^lr = \([^ #]*\).*/{s//\1/;p;q}' "examples/results/$n.toml")
  trained=$(sed -n '/.*; trains \([0-9,]*\) of .*/{s//\1/;p;q}' "$out")
  wall=$(field "$tf" "Elapsed (wall clock) time (h:mm:ss or m:ss)")
  cpu=$(awk -v u="$(field "$tf" "User time (seconds)")" -v s="$(field "$tf" "System time (seconds)")" 'BEGIN {printf "%.0f s", u + s}')
  rss=$(awk -v k="$(field "$tf" "Maximum resident set size (kbytes)")" 'BEGIN {printf "%.0f MiB", k / 1024}')
  # Bytes on disk of a file or a folder (du -b: apparent size, summed).
  size() { if [ -e "$1" ]; then echo "$(du -b -s "$1" | cut -f1) B"; else echo "none"; fi; }
  status=$(field "$tf" "Exit status")
  if [ "$status" != "0" ]; then
    echo "| $n | $lr | $trained | FAILED (exit $status, see $out) | | | | | | $wall | $cpu | $rss | | | | $(load1 "$n" 1) / $(load1 "$n" 2) |"
    continue
  fi
  echo "| $n | $lr | $trained | $(score validation "$n" accuracy) | $(score validation "$n" f1) | $(score validation "$n" mcc) | $(score test "$n" accuracy) | $(score test "$n" f1) | $(score test "$n" mcc) | $wall | $cpu | $rss | $(size "$R/$n/adapter.safetensors") | $(size "$R/$n/checkpoint.safetensors") | $(size "$R/$n/hf-model") | $(load1 "$n" 1) / $(load1 "$n" 2) |"
done

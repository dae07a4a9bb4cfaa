#!/usr/bin/env bash
# Two builds of emstail following the very same appends at the same time, for a change whose
# effect is smaller than this VM's drift from run to run (±25 %): both see the same machine at
# the same moment, so the ratio of their CPU holds where each one's figure moves. Each run
# starts both on one log (separate state directories, StreamRecorder on, 8 workers, one fake
# EMS), appends RATE events a second for SECS seconds with examples/log_writer.rs, and prints
# each one's CPU per event (the first field of /proc/PID/task/*/schedstat, every thread, both
# builds read in one go right before and 2 s after the appends, bench/cpu.py) and B ÷ A, then the
# geometric mean of B ÷ A over the runs.
#   calls: inStreamCreated, one `record` call each (both builds call the fake EMS);
#   idle:  inStreamCodecsUpdated, which no plugin acts on.
# Usage: bench/follow_ab.sh BIN_A BIN_B [RUNS] [RATE] [SECS] [calls|idle]
#   e.g. git stash; cargo build --release; cp target/release/emstail /tmp/emstail-a; git stash pop
#        cargo build --release; bench/follow_ab.sh /tmp/emstail-a target/release/emstail 4 100 10 idle
# A and B take turns at starting first (see below): RUNS should be even (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
a=$1 b=$2 runs=${3:-4} rate=${4:-100} secs=${5:-10} kind=${6:-idle}
case $kind in
  idle) writer_kind=(--idle-events) ;;
  calls) writer_kind=() ;;
  *) echo "follow_ab: the kind is calls or idle, not $kind" >&2; exit 2 ;;
esac
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --example fake_ems --example log_writer
bin=$target/release
work=$(mktemp -d /tmp/emstail-ab.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=bench/recorder_ems.sh
. bench/recorder_ems.sh
start_recorder_ems "$work" "$bin"
pids+=("$fake_pid")
# Both builds' CPU ns, read in one go: read one after the other (a python start apart), the one
# read second counted about 5 % more at 5,000/s, whichever build it was.
ns() { python3 bench/cpu.py ns "$1" "$2" | cut -d' ' -f1 | paste -sd' '; }
echo "run  first  A µs/event  B µs/event   B/A   ($kind, $rate/s for $secs s)"
for run in $(seq "$runs"); do
  mkdir -p "$work/$run/log"
  log=$work/$run/log/events.txt
  : > "$log"
  # A and B take turns at starting first (odd runs A, even runs B), so that neither always
  # gets the appends' notifications first; take an even number of runs.
  if [ $((run % 2)) -eq 1 ]; then
    "$a" run --config "$work/config.ini" --state-dir "$work/$run/a" --log "$log" 2> "$work/$run/a.err" &
    pa=$!
    "$b" run --config "$work/config.ini" --state-dir "$work/$run/b" --log "$log" 2> "$work/$run/b.err" &
    pb=$!
    first=A
  else
    "$b" run --config "$work/config.ini" --state-dir "$work/$run/b" --log "$log" 2> "$work/$run/b.err" &
    pb=$!
    "$a" run --config "$work/config.ini" --state-dir "$work/$run/a" --log "$log" 2> "$work/$run/a.err" &
    pa=$!
    first=B
  fi
  pids+=("$pa" "$pb")
  for _ in $(seq 200); do
    [ -f "$work/$run/a/status.json" ] && [ -f "$work/$run/b/status.json" ] && break
    sleep 0.05
  done
  sleep 1
  read -r a0 b0 < <(ns "$pa" "$pb")
  "$bin/examples/log_writer" --log "$log" --rate "$rate" --secs "$secs" --prefix "r${run}_" \
    --stamps "$work/$run/stamps.txt" "${writer_kind[@]}" 2> /dev/null
  sleep 2
  read -r a1 b1 < <(ns "$pa" "$pb")
  kill "$pa" "$pb"
  wait "$pa" "$pb" 2>/dev/null || true
  python3 - "$run" "$first" "$((rate * secs))" "$a0" "$a1" "$b0" "$b1" <<'PY'
import sys
run, first, n, a0, a1, b0, b1 = *sys.argv[1:3], int(sys.argv[3]), *map(int, sys.argv[4:])
a, b = (a1 - a0) / n / 1000, (b1 - b0) / n / 1000
print(f"{run:>3}  {first:>5}  {a:10.1f}  {b:10.1f}  {b / a:6.3f}")
PY
done | tee "$work/runs.txt"
# With A and B first in equal numbers, the geometric mean of B ÷ A cancels the start order.
python3 - "$work/runs.txt" <<'PY'
import math, sys
rows = [line.split() for line in open(sys.argv[1])]
ratios = {"A": [], "B": []}
for row in rows:
    ratios[row[1]].append(float(row[4]))
def gmean(xs):
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")
every = ratios["A"] + ratios["B"]
note = "" if len(ratios["A"]) == len(ratios["B"]) else " (A and B not first equally often: take an even RUNS)"
print(f"B/A geometric mean: {gmean(every):.3f} over {len(every)} runs; A first: {gmean(ratios['A']):.3f},"
      f" B first: {gmean(ratios['B']):.3f}{note}")
PY

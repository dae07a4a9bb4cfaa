#!/usr/bin/env bash
# Two builds of emstail following the very same appends at the same time, for a change whose
# effect is smaller than this VM's drift from run to run (±25 %): both see the same machine at
# the same moment, so the ratio of their CPU holds where each one's figure moves. Each run
# starts both on one log (separate state directories, StreamRecorder on, 8 workers, one fake
# EMS), appends RATE events a second for SECS seconds with examples/log_writer.rs, and prints
# each one's CPU per event (the first field of /proc/PID/task/*/schedstat, every thread,
# sampled right before and 2 s after the appends, bench/cpu.py) and B ÷ A.
#   calls: inStreamCreated, one `record` call each (both builds call the fake EMS);
#   idle:  inStreamCodecsUpdated, which no plugin acts on.
# Usage: bench/follow_ab.sh BIN_A BIN_B [RUNS] [RATE] [SECS] [calls|idle]
#   e.g. git stash; cargo build --release; cp target/release/emstail /tmp/emstail-a; git stash pop
#        cargo build --release; bench/follow_ab.sh /tmp/emstail-a target/release/emstail 3 100 10 idle
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
a=$1 b=$2 runs=${3:-3} rate=${4:-100} secs=${5:-10} kind=${6:-idle}
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
ns() { python3 bench/cpu.py ns "$1" | cut -d' ' -f1; }
echo "run  A µs/event  B µs/event   B/A   ($kind, $rate/s for $secs s)"
for run in $(seq "$runs"); do
  mkdir -p "$work/$run/log"
  log=$work/$run/log/events.txt
  : > "$log"
  "$a" run --config "$work/config.ini" --state-dir "$work/$run/a" --log "$log" 2> "$work/$run/a.err" &
  pa=$!
  "$b" run --config "$work/config.ini" --state-dir "$work/$run/b" --log "$log" 2> "$work/$run/b.err" &
  pb=$!
  pids+=("$pa" "$pb")
  for _ in $(seq 200); do
    [ -f "$work/$run/a/status.json" ] && [ -f "$work/$run/b/status.json" ] && break
    sleep 0.05
  done
  sleep 1
  a0=$(ns "$pa") b0=$(ns "$pb")
  "$bin/examples/log_writer" --log "$log" --rate "$rate" --secs "$secs" --prefix "r${run}_" \
    --stamps "$work/$run/stamps.txt" "${writer_kind[@]}" 2> /dev/null
  sleep 2
  a1=$(ns "$pa") b1=$(ns "$pb")
  kill "$pa" "$pb"
  wait "$pa" "$pb" 2>/dev/null || true
  python3 - "$run" "$((rate * secs))" "$a0" "$a1" "$b0" "$b1" <<'PY'
import sys
run, n, a0, a1, b0, b1 = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:])
a, b = (a1 - a0) / n / 1000, (b1 - b0) / n / 1000
print(f"{run:>3}  {a:10.1f}  {b:10.1f}  {b / a:6.3f}")
PY
done

#!/usr/bin/env bash
# Live latency and cost. For each rate, three runs of the same length:
#  1. a writer appends inStreamCreated events to the log at a steady rate; emstail run follows it
#     with StreamRecorder on, so each event is one `record` call to the fake EMS, which stamps its
#     arrival: p50/p99/max append→call latency, CPU time per event of the emstail process
#     (utime+stime from /proc), whether it kept up;
#  2. baseline in the same command: the same `record` calls at the same rate made by the API client
#     alone (examples/ems_call_loop.rs, 8 threads, no log, no plugins): its CPU time per call, and
#     emstail's per-event CPU as a ratio of it;
#  3. the writer appends events no plugin acts on (inStreamCodecsUpdated, same payload): CPU time
#     per event of following, parsing and planning alone.
# Then the peak RSS (VmHWM) of emstail over all runs.
# Usage: bench/follow.sh [SECONDS_PER_RATE] [RATES...]   (default: 10 s at 100/s and 5000/s)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
rates=("${@:-100}")
[ $# -eq 0 ] && rates=(100 5000)
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin emstail --example fake_ems --example log_writer \
  --example ems_call_loop
bin=$target/release
work=$(mktemp -d /tmp/emstail-follow.XXXXXX)
cleanup() {
  [ -n "${em_pid:-}" ] && kill "$em_pid" 2>/dev/null || true
  [ -n "${fake_pid:-}" ] && kill "$fake_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/examples/fake_ems" --port 0 --ignore-stdin --max-secs 900 --log "$work/calls.jsonl" \
  > "$work/fake.out" 2> "$work/fake.err" &
fake_pid=$!
for _ in $(seq 100); do grep -q listening "$work/fake.out" 2>/dev/null && break; sleep 0.05; done
api=$(sed -n 's/^listening on \(http:[^ ]*\)\/$/\1/p' "$work/fake.out")
cat > "$work/config.ini" <<CFG
{ "Service": { "ems_api": "$api", "workers": 8 },
  "StreamRecorder": { "plugin_switch": "enabled", "parameters": { "file_location": "/var/evostreamms/media" } } }
CFG
: > "$work/events.txt"
"$bin/emstail" run --config "$work/config.ini" --state-dir "$work/state" --log "$work/events.txt" \
  2> "$work/emstail.err" &
em_pid=$!
for _ in $(seq 100); do [ -f "$work/state/status.json" ] && break; sleep 0.05; done

tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$em_pid/stat"; }
calls() { grep -c "\"$1" "$work/calls.jsonl" 2>/dev/null || true; }

lines_read() { sed -n 's/^ *"lines": \([0-9]*\).*/\1/p' "$work/state/status.json"; }
results=()
for rate in "${rates[@]}"; do
  prefix="r${rate}_"
  n=$((rate * secs))
  before=$(cpu_ticks)
  "$bin/examples/log_writer" --log "$work/events.txt" --rate "$rate" --secs "$secs" \
    --prefix "$prefix" --stamps "$work/stamps-$rate.txt" 2>> "$work/writer.err"
  # Kept up: every call has arrived within 2 s of the last append.
  kept=no
  for _ in $(seq 200); do
    if [ "$(calls "$prefix")" -ge "$n" ]; then kept=yes; break; fi
    sleep 0.01
  done
  for _ in $(seq 3000); do [ "$(calls "$prefix")" -ge "$n" ] && break; sleep 0.02; done
  sleep 0.3
  after=$(cpu_ticks)
  ticks_calls=$((after - before))

  # 2. The same calls from the API client alone, at the same rate.
  /usr/bin/time -o "$work/loop.time" -f '%U %S' "$bin/examples/ems_call_loop" --api "$api/" \
    --streams "$n" --concurrency 8 --record-only --rate "$rate" --prefix "c${rate}_" \
    > "$work/loop.out" 2>> "$work/loop.err"
  loop_secs=$(awk '{print $1 + $2}' "$work/loop.time")

  # 3. Events no plugin acts on: following and parsing alone.
  lines_before=$(lines_read)
  before=$(cpu_ticks)
  "$bin/examples/log_writer" --log "$work/events.txt" --rate "$rate" --secs "$secs" \
    --prefix "i${rate}_" --stamps "$work/idle-stamps-$rate.txt" --idle-events 2>> "$work/writer.err"
  for _ in $(seq 500); do
    [ "$(lines_read)" -ge $((lines_before + n)) ] && break
    sleep 0.01
  done
  after=$(cpu_ticks)
  ticks_idle=$((after - before))

  results+=("$(python3 - "$work/stamps-$rate.txt" "$work/calls.jsonl" "$prefix" "$rate" "$n" \
    "$ticks_calls" "$tck" "$kept" "$loop_secs" "$ticks_idle" <<'PY'
import json, sys
stamps_file, calls_file, prefix, rate, n, ticks, tck, kept, loop_secs, ticks_idle = sys.argv[1:]
appended = {}
for line in open(stamps_file):
    name, ns = line.split()
    appended[name] = int(ns)
lat = []
seen = set()
for line in open(calls_file):
    c = json.loads(line)
    name = c.get("params", {}).get("localStreamName", "")
    if c["command"] == "record" and name.startswith(prefix) and name not in seen:
        seen.add(name)
        lat.append((c["received_unix_ns"] - appended[name]) / 1e6)
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
n = int(n)
missing = n - len(lat)
cpu_us = int(ticks) / int(tck) * 1e6 / n
loop_us = float(loop_secs) * 1e6 / n
idle_us = int(ticks_idle) / int(tck) * 1e6 / n
print(f"{rate:<8} {len(lat):>7} {pct(0.5):>7.2f} {pct(0.99):>7.2f} {lat[-1] if lat else float('nan'):>7.2f} {kept:>5}"
      f" {cpu_us:>10.1f} {loop_us:>10.1f} {cpu_us / loop_us:>6.2f} {idle_us:>10.1f}"
      + (f"  ({missing} calls missing)" if missing else ""))
PY
)")
done
printf '%-8s %7s %7s %7s %7s %5s %10s %10s %6s %10s\n' "rate/s" events "p50 ms" "p99 ms" "max ms" "kept" \
  "µs/ev" "client" ratio "µs/ev idle"
printf '%s\n' "${results[@]}"
echo "µs/ev: emstail CPU per event, each event one record call; client: CPU per call of the API"
echo "client alone making the same calls at the same rate; ratio = µs/ev ÷ client; µs/ev idle:"
echo "emstail CPU per event for events no plugin acts on (CPU times from /proc, 10 ms ticks)"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$em_pid/status")
echo "peak RSS (VmHWM) of emstail: $((hwm / 1024)) MiB ($hwm KiB)"
echo "targets: p50 <= 2 ms and p99 <= 10 ms at 100/s; keeps up at 5000/s; <= 20 µs CPU/event; peak RSS <= 30 MiB"
cat "$work/writer.err" "$work/loop.err" >&2

#!/usr/bin/env bash
# Live latency: a writer appends inStreamCreated events to the log at a steady rate; emstail
# run follows it with StreamRecorder on, so each event is one `record` call to the fake EMS,
# which stamps its arrival. Prints p50/p99/max append→call latency, CPU time per event of the
# emstail process (utime+stime from /proc) and its peak RSS (VmHWM).
# Usage: bench/follow.sh [SECONDS_PER_RATE] [RATES...]   (default: 10 s at 100/s and 5000/s)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
rates=("${@:-100}")
[ $# -eq 0 ] && rates=(100 5000)
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin emstail --example fake_ems --example log_writer
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

printf '%-10s %8s %10s %10s %10s %12s %10s\n' "rate/s" events "p50 ms" "p99 ms" "max ms" "CPU µs/ev" "kept up"
for rate in "${rates[@]}"; do
  prefix="r${rate}_"
  before=$(cpu_ticks)
  "$bin/examples/log_writer" --log "$work/events.txt" --rate "$rate" --secs "$secs" \
    --prefix "$prefix" --stamps "$work/stamps-$rate.txt" 2>> "$work/writer.err"
  n=$((rate * secs))
  # Kept up: every call has arrived within 2 s of the last append.
  kept=no
  for _ in $(seq 200); do
    if [ "$(calls "$prefix")" -ge "$n" ]; then kept=yes; break; fi
    sleep 0.01
  done
  for _ in $(seq 3000); do [ "$(calls "$prefix")" -ge "$n" ] && break; sleep 0.02; done
  sleep 0.3
  after=$(cpu_ticks)
  python3 - "$work/stamps-$rate.txt" "$work/calls.jsonl" "$prefix" "$rate" "$n" \
    "$(( (after - before) ))" "$tck" "$kept" <<'PY'
import json, sys
stamps_file, calls_file, prefix, rate, n, ticks, tck, kept = sys.argv[1:]
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
missing = int(n) - len(lat)
cpu_us = int(ticks) / int(tck) * 1e6 / int(n)
print(f"{rate:<10} {len(lat):>8} {pct(0.5):>10.2f} {pct(0.99):>10.2f} {lat[-1] if lat else float('nan'):>10.2f} {cpu_us:>12.1f} {kept:>10}"
      + (f"  ({missing} calls missing)" if missing else ""))
PY
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$em_pid/status")
echo "peak RSS (VmHWM) of emstail: $((hwm / 1024)) MiB ($hwm KiB)"
echo "targets: p50 <= 2 ms and p99 <= 10 ms at 100/s; keeps up at 5000/s; <= 20 µs CPU/event; peak RSS <= 30 MiB"
cat "$work/writer.err" >&2

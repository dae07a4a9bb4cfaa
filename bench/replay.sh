#!/usr/bin/env bash
# Replay throughput: `emstail replay --dry-run --json` against `wc -l` on the same generated
# ≥ 1 GB event log, both from the page cache; and against the floor of any replay that reads
# every event with serde_json: examples/json_floor.rs parsing each line, already in memory,
# into the fields the plugins read, on one thread and on every core (the faster counts), doing
# nothing else; and the same replay with 10 custom rules beside the plugins (events/s with
# them over events/s without). Usage: bench/replay.sh [SIZE_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1100}
data=bench/data
mkdir -p "$data"
log=$data/events_20261129_101500.txt
if [ ! -f "$log" ] || [ "$(stat -L -c %s "$log")" -lt $((size_mb * 1000000)) ]; then
  echo "generating $log (${size_mb} MB)..." >&2
  python3 bench/gen_events.py "$log" "$size_mb"
fi
cat > "$data/config.ini" <<'CFG'
{
  "Service": { "ems_api": "http://127.0.0.1:7777", "media_root": ["/var/evostreamms/evo-webroot"] },
  "StreamAutoRouter": { "plugin_switch": "enabled", "parameters": { "token": "", "destination_uri": "10.9.9.9" } },
  "StreamRecorder": { "plugin_switch": "enabled", "parameters": { "file_location": "/var/evostreamms/media", "period_time": 3600 } },
  "StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": { "destination_uri": ["10.9.9.10", "10.9.9.11"] } },
  "AmazonHLSUpload": { "plugin_switch": "enabled", "parameters": { "aws_access_key": "k", "aws_secret_key": "s", "default_bucket": "hls-files" } },
  "AmazonHDSUpload": { "plugin_switch": "enabled", "parameters": { "aws_access_key": "k", "aws_secret_key": "s", "default_bucket": "hds-files", "bootstrap": "bootstrap" } },
  "AmazonDASHUpload": { "plugin_switch": "enabled", "parameters": { "aws_access_key": "k", "aws_secret_key": "s", "default_bucket": "dash-files" } }
}
CFG
# The same config with 10 custom rules beside the plugins, every `when` kind between them, on
# the event types of the mix; like most users' rules they act on a few streams, so the run
# measures the rules' evaluation on every event rather than printing many more actions.
python3 - "$data/config.ini" "$data/config-rules.ini" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["Rules"] = [
  {"name": "hls-for-cams", "on": "inStreamCreated",
   "when": {"payload.type": {"in": ["INR", "INP"]}, "payload.name": {"matches": "^cam"}},
   "call": {"command": "createHLSStream", "params": {"localStreamNames": "${payload.name}",
            "groupName": "${payload.name}", "targetFolder": "/var/evostreamms/evo-webroot/hls"}}},
  {"name": "drop-inbound", "on": "outStreamClosed", "when": {"payload.inStreamUniqueId": {"exists": True}},
   "call": {"command": "shutdownStream", "params": {"id": "${payload.inStreamUniqueId}", "permanently": 0}}},
  {"name": "archive-cam105", "on": "hlsChunkClosed", "when": {"payload.file": {"contains": "/cam105/"}},
   "upload": {"file": "${payload.file}", "bucket": "hls-archive", "s3": "AmazonHLSUpload"}},
  {"name": "unarchive-cam105", "on": "hlsChunkDeleted", "when": {"payload.file": {"matches": "/cam105/"}},
   "delete": {"file": "${payload.file}", "bucket": "hls-archive", "s3": "AmazonHLSUpload"}},
  {"name": "dash-video-cam102", "on": "dashChunkClosed", "when": {"payload.file": {"matches": "/cam102/+video/"}},
   "call": {"command": "version", "params": {"note": "${payload.file}"}}},
  {"name": "late-timers", "on": "timerTriggered", "when": {"payload.triggerCount": {"gt": 500}},
   "call": {"command": "removeTimer", "params": {"id": "${payload.timerId}"}}},
  {"name": "cli-ids", "on": "cliRequest", "when": {"payload.command": "listStreamsIds"},
   "call": {"command": "version"}},
  {"name": "hds-without-file", "on": "hdsChunkClosed", "when": {"payload.file": {"exists": False}},
   "call": {"command": "version"}},
  {"name": "closed-range", "on": "inStreamClosed", "when": {"payload.uniqueId": {"ge": 100, "le": 150}},
   "call": {"command": "version", "params": {"id": "${payload.uniqueId}", "at": "${timestamp}"}}},
  {"name": "child-playlists", "on": "hlsChildPlaylistUpdated",
   "when": {"type": "hlsChildPlaylistUpdated", "payload.file": {"matches": "/cam10[0-1]/"}},
   "upload": {"file": "${payload.file}", "bucket": "hls-archive", "s3": "AmazonHLSUpload"}},
]
json.dump(config, open(sys.argv[2], "w"), indent=1)
PY
cargo build --release --quiet --bin emstail --example json_floor
bin=${CARGO_TARGET_DIR:-target}/release/emstail
bytes=$(stat -L -c %s "$log")
events=$(wc -l < "$log")
cat "$log" > /dev/null  # warm the page cache for both runs

# Wall seconds and peak RSS (KiB) of a command, its output discarded.
measure() { /usr/bin/time -o "$data/time" -f '%e %M' "$@" > /dev/null 2>"$data/stderr"; cat "$data/time"; }
# "seconds rss" of the fastest of N runs of a command: wc takes a fraction of a second, so
# one run of it is mostly noise. Usage: best N command...
best() {
  local n=$1 t r bt="" br=""
  shift
  for _ in $(seq "$n"); do
    read -r t r < <(measure "$@")
    if [ -z "$bt" ] || awk -v a="$t" -v b="$bt" 'BEGIN { exit !(a < b) }'; then bt=$t br=$r; fi
  done
  echo "$bt $br"
}
read -r t_wc rss_wc < <(best "${WC_RUNS:-3}" wc -l "$log")
# The floor: json_floor's own timing of the parse (the file already in memory), best of N.
t_floor=""
for _ in $(seq "${FLOOR_RUNS:-3}"); do
  t=$("${CARGO_TARGET_DIR:-target}/release/examples/json_floor" "$log" | sed -n 's/^best: \([0-9.]*\) s.*/\1/p')
  if [ -z "$t_floor" ] || awk -v a="$t" -v b="$t_floor" 'BEGIN { exit !(a < b) }'; then t_floor=$t; fi
done
# Without and with the rules in turns, best of N each: on a shared machine the load drifts
# between runs, and taking turns spreads the drift over both.
t_em="" t_rules=""
for _ in $(seq "${RUNS:-1}"); do
  read -r t r < <(measure "$bin" replay --config "$data/config.ini" --dry-run --json "$log")
  tail -1 "$data/stderr" >&2
  if [ -z "$t_em" ] || awk -v a="$t" -v b="$t_em" 'BEGIN { exit !(a < b) }'; then t_em=$t rss_em=$r; fi
  read -r t r < <(measure "$bin" replay --config "$data/config-rules.ini" --dry-run --json "$log")
  tail -1 "$data/stderr" >&2
  if [ -z "$t_rules" ] || awk -v a="$t" -v b="$t_rules" 'BEGIN { exit !(a < b) }'; then t_rules=$t rss_rules=$r; fi
done

awk -v re="$rss_em" -v rw="$rss_wc" -v b="$bytes" -v n="$events" \
  -v tw="$t_wc" -v te="$t_em" -v tf="$t_floor" 'BEGIN {
  printf "%-18s %12s %12s %12s %10s %10s %10s\n", "measure", "emstail", "json floor", "wc -l",
    "em/wc", "floor/wc", "em/floor";
  printf "%-18s %12.1f %12.1f %12.1f %10.3f %10.3f %10.3f\n", "MB/s", b/te/1e6, b/tf/1e6, b/tw/1e6,
    tw/te, tw/tf, tf/te;
  printf "%-18s %12.0f %12.0f %12.0f\n", "events (lines)/s", n/te, n/tf, n/tw;
  printf "%-18s %12.2f %12.2f %12.2f\n", "seconds", te, tf, tw;
  printf "%-18s %12.1f %12s %12.1f\n", "peak RSS (MiB)", re/1024, "-", rw/1024;
}'
# The same replay with 10 custom rules beside the plugins.
awk -v n="$events" -v te="$t_em" -v tr="$t_rules" -v re="$rss_em" -v rr="$rss_rules" 'BEGIN {
  printf "%-18s %12s %12s %12s\n", "10 rules", "plugins", "+ 10 rules", "ratio";
  printf "%-18s %12.0f %12.0f %12.3f\n", "events (lines)/s", n/te, n/tr, te/tr;
  printf "%-18s %12.1f %12.1f\n", "peak RSS (MiB)", re/1024, rr/1024;
}'
echo "file: $bytes bytes, $events events"
awk -v re="$rss_em" -v te="$t_em" -v tf="$t_floor" 'BEGIN {
  printf "targets: emstail / floor >= 0.8: %.3f (%s); peak RSS <= 15 MiB: %.1f MiB (%s)\n",
    tf/te, (tf/te >= 0.8 ? "met" : "not met"), re/1024, (re/1024 <= 15 ? "met" : "not met");
}'

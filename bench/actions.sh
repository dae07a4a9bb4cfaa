#!/usr/bin/env bash
# Action throughput of `emstail replay` carrying actions out, each against a bare loop of the
# same requests with the same client and concurrency (workers = 8):
#   (a) EMS calls/s: STREAMS inStreamCreated events, StreamRecorder + StreamAutoRouter enabled
#       (a record and a pushStream per stream), the fake EMS answering each call after 1 ms;
#       baseline: examples/ems_call_loop.rs making the same calls;
#   (b) S3 PUTs/s: SEGMENTS hlsChunkClosed events (a segment and its playlist per event) on the
#       local s3s-fs; baseline: examples/s3_put_loop.rs making the same PUTs (same keys, same
#       files, same order) without lanes;
#   (c) peak RSS (VmHWM, /usr/bin/time %M) of each.
# Usage: bench/actions.sh [STREAMS] [SEGMENTS]. Generated inputs go to bench/data/actions.
# BENCH_PROFILE=dev runs debug builds instead (a quick check of the script, not a figure).
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${1:-20000}
segments=${2:-10000}
per_stream=100 # segments per HLS stream: SEGMENTS / 100 lanes
workers=8
# (a) may run at another concurrency (EMS_WORKERS): each call waits ~1 ms on the fake EMS, so
# calls/s is bounded by workers / latency for the replay and the loop alike.
ems_workers=${EMS_WORKERS:-$workers}
data=$PWD/bench/data/actions
target=${CARGO_TARGET_DIR:-$PWD/target}
if [[ ${BENCH_PROFILE:-release} == dev ]]; then
    build=(cargo build --quiet)
    rel=$target/debug
else
    build=(cargo build --release --quiet)
    rel=$target/release
fi

rm -rf "$data"
mkdir -p "$data"
fake_pid=""
s3_env=$data/s3-server.env
cleanup() {
    if [[ -n $fake_pid ]]; then kill "$fake_pid" 2>/dev/null || true; fi
    if [[ -f $s3_env ]]; then scripts/s3-server.sh stop "$s3_env" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

echo "building ($(basename "$rel"))..." >&2
"${build[@]}" --bin emstail --example fake_ems --example ems_call_loop --example s3_put_loop

# Wall seconds and peak RSS (KiB) of a command; its stdout and stderr go to $data/$1.*.
measure() {
    local name=$1
    shift
    /usr/bin/time -o "$data/$name.time" -f '%e %M' "$@" >"$data/$name.out" 2>"$data/$name.err" || {
        echo "bench: $name failed:" >&2
        tail -20 "$data/$name.err" >&2
        exit 1
    }
    cat "$data/$name.time"
}

# ---- (a) EMS calls ------------------------------------------------------------------------
# Every measured run gets a fresh fake EMS: replay asks listConfig and leaves out the records
# EMS already holds, so an EMS that kept an earlier round's (or the loop's) configs would
# measure a different job, or, past 16 MiB of them, a refused listConfig.
calls_log=$data/ems-calls.jsonl
start_fake() {
    : >"$calls_log"
    "$rel/examples/fake_ems" --port 0 --delay-ms 1 --ignore-stdin --max-secs 900 --log "$calls_log" \
        >"$data/fake_ems.out" 2>"$data/fake_ems.err" &
    fake_pid=$!
    for _ in $(seq 100); do
        grep -q '^listening on ' "$data/fake_ems.out" 2>/dev/null && break
        sleep 0.1
    done
    api=$(sed -n 's/^listening on //p' "$data/fake_ems.out")
    [[ -n $api ]] || { echo "bench: the fake EMS did not start" >&2; exit 1; }
    sed -i "s|\"ems_api\": \"[^\"]*\"|\"ems_api\": \"$api\"|" "$data/ems.ini"
}
stop_fake() {
    kill "$fake_pid"
    wait "$fake_pid" 2>/dev/null || true
    fake_pid=""
}

python3 - "$data/ems/events_20261129_101500.txt" "$streams" <<'PY'
import json, os, sys
path, n = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.dirname(path), exist_ok=True)
with open("fixtures/logs/events_20261129_101500.txt") as f:
    template = json.loads(f.readlines()[1].rstrip().rstrip(","))
with open(path, "w") as out:
    for i in range(1, n + 1):
        template["id"] = i
        template["_logEntry"] = "%05d" % (i % 100000)
        template["payload"]["name"] = "cam%05d" % i
        template["payload"]["uniqueId"] = i
        out.write(json.dumps(template, separators=(",", ":")) + ",\n")
PY
cat >"$data/ems.ini" <<CFG
{
  "Service": { "ems_api": "", "state_dir": "$data/state-ems", "workers": $ems_workers,
               "retry": { "max_attempts": 3, "max_backoff_secs": 1 } },
  "StreamRecorder": { "plugin_switch": "enabled",
                      "parameters": { "file_location": "/var/evostreamms/media", "period_time": 3600 } },
  "StreamAutoRouter": { "plugin_switch": "enabled",
                        "parameters": { "token": "", "destination_uri": "127.0.0.1:1936" } }
}
CFG
chmod 600 "$data/ems.ini"
# Like (b) below: ROUNDS alternating rounds (loop first), each side keeping its best; each run
# against its own fresh fake EMS, whose log counts the calls.
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b > a) ? b : a }'; }
t_ems="" rss_ems="" t_ems_loop="" rss_ems_loop=""
for round in $(seq "${ROUNDS:-2}"); do
    start_fake
    read -r t rss < <(measure loop-ems "$rel/examples/ems_call_loop" --api "$api" \
        --streams "$streams" --concurrency "$ems_workers" --prefix "loop$round")
    calls_loop=$(wc -l <"$calls_log")
    stop_fake
    t_ems_loop=$(min "$t_ems_loop" "$t") rss_ems_loop=$(max "$rss_ems_loop" "$rss")
    rm -rf "$data/state-ems"
    start_fake
    read -r t rss < <(measure replay-ems env RUST_LOG=warn "$rel/emstail" replay --config "$data/ems.ini" "$data/ems")
    # The actions' calls; replay's one listConfig before its first record is counted apart.
    calls_replay=$(grep -vc '"command":"listConfig"' "$calls_log" || true)
    lookups_replay=$(grep -c '"command":"listConfig"' "$calls_log" || true)
    stop_fake
    t_ems=$(min "$t_ems" "$t") rss_ems=$(max "$rss_ems" "$rss")
done

# ---- (b) S3 uploads -----------------------------------------------------------------------
# The server keeps its objects in memory (tmpfs) where there is one: disk writeback from one
# round otherwise slows down whichever runs next, and the ratio measures the disk.
if [[ -d /dev/shm && -w /dev/shm ]]; then
    TMPDIR=/dev/shm scripts/s3-server.sh "$s3_env" >/dev/null
else
    scripts/s3-server.sh "$s3_env" >/dev/null
fi
set -a
# shellcheck disable=SC1090
. "$s3_env"
set +a
# s3s-fs keeps a bucket as a directory of its data dir.
mkdir "$EMSTAIL_S3_DATA_DIR/bench-replay" "$EMSTAIL_S3_DATA_DIR/bench-loop"

python3 - "$data" "$segments" "$per_stream" <<'PY'
import json, os, sys
data, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
root = os.path.join(data, "webroot")
puts = open(os.path.join(data, "puts.tsv"), "w")
lanes = max(1, n // per)
body = bytes(range(256)) * 16  # a 4 KiB segment
os.makedirs(os.path.join(data, "hls"))
with open(os.path.join(data, "hls", "events_20261129_101500.txt"), "w") as log:
    for i in range(n):
        stream, number = i % lanes, i // lanes
        d = os.path.join(root, "hls", "s%03d" % stream)
        if number == 0:
            os.makedirs(d)
            with open(os.path.join(d, "playlist.m3u8"), "w") as p:
                p.write("#EXTM3U\n#EXT-X-TARGETDURATION:10\n" + "#EXTINF:10,\nsegment_%d.ts\n" * 6)
        seg = os.path.join(d, "segment_%d.ts" % number)
        with open(seg, "wb") as s:
            s.write(body)
        # The bare loop makes the same PUTs: the segment, then its stream's playlist.
        for f in (seg, os.path.join(d, "playlist.m3u8")):
            puts.write("%s\t%s\n" % (os.path.relpath(f, root), f))
        event = {"_logEntry": "%05d" % (i % 100000), "id": i + 1, "processId": 2593,
                 "timestamp": 1795947300 + i, "type": "hlsChunkClosed",
                 "payload": {"PID": 2593, "customData": None, "file": seg,
                             "playlistStartTs": 1764411300000.0, "segmentDuration": 10.0,
                             "segmentStartTs": 1764411300000.0 + number * 10000}}
        log.write(json.dumps(event, separators=(",", ":")) + ",\n")
PY
cat >"$data/s3.ini" <<CFG
{
  "Service": { "ems_api": "http://127.0.0.1:9/", "state_dir": "$data/state-s3", "workers": $workers,
               "media_root": ["$data/webroot"],
               "retry": { "max_attempts": 3, "max_backoff_secs": 1 } },
  "AmazonHLSUpload": { "plugin_switch": "enabled", "parameters": {
      "aws_access_key": "$EMSTAIL_S3_ACCESS_KEY", "aws_secret_key": "$EMSTAIL_S3_SECRET_KEY",
      "default_bucket": "bench-replay", "endpoint": "$EMSTAIL_S3_ENDPOINT" } }
}
CFG
chmod 600 "$data/s3.ini"
# The server's speed drifts as its data dir fills, so the two alternate, ROUNDS times each
# (loop first), and each keeps its best round; every round writes the same keys again.
t_s3="" rss_s3="" t_s3_loop="" rss_s3_loop=""
for _ in $(seq "${ROUNDS:-2}"); do
    read -r t rss < <(measure loop-s3 "$rel/examples/s3_put_loop" --endpoint "$EMSTAIL_S3_ENDPOINT" \
        --bucket bench-loop --list "$data/puts.tsv" --concurrency "$workers")
    t_s3_loop=$(min "$t_s3_loop" "$t") rss_s3_loop=$(max "$rss_s3_loop" "$rss")
    # --all-actions: every playlist update too, as the loop makes them; the net effect would
    # leave out the 9,900 playlists a later one supersedes, and measure half the PUTs.
    read -r t rss < <(measure replay-s3 env RUST_LOG=warn "$rel/emstail" replay --all-actions \
        --config "$data/s3.ini" "$data/hls")
    t_s3=$(min "$t_s3" "$t") rss_s3=$(max "$rss_s3" "$rss")
done
puts_replay=$(grep -o 'carried out: [0-9]* done' "$data/replay-s3.err" | grep -o '[0-9]*')
puts_loop=$(grep -o '^[0-9]* uploads' "$data/loop-s3.out" | grep -o '[0-9]*')

# ---- table --------------------------------------------------------------------------------
awk -v ew="$ems_workers" -v n="$streams" -v te="$t_ems" -v tel="$t_ems_loop" -v cr="$calls_replay" -v cl="$calls_loop" -v lr="$lookups_replay" \
    -v ts="$t_s3" -v tsl="$t_s3_loop" -v pr="$puts_replay" -v pl="$puts_loop" -v segs="$segments" \
    -v re="$rss_ems" -v rel="$rss_ems_loop" -v rs="$rss_s3" -v rsl="$rss_s3_loop" 'BEGIN {
  printf "%-44s %12s %12s %8s\n", "measure (workers = 8)", "replay", "bare loop", "ratio";
  printf "%-44s %12.0f %12.0f %8.3f\n", "(a) EMS calls/s (fake EMS 1 ms, workers " ew ")", cr/te, cl/tel, (cr/te)/(cl/tel);
  printf "%-44s %12.0f %12s\n", "(a) inStreamCreated events/s", n/te, "-";
  printf "%-44s %12d %12d\n", "(a) EMS calls made (+ listConfig: " lr ")", cr, cl;
  printf "%-44s %12.2f %12.2f\n", "(a) seconds", te, tel;
  printf "%-44s %12.0f %12.0f %8.3f\n", "(b) S3 PUTs/s (4 KiB segments + playlists)", pr/ts, pl/tsl, (pr/ts)/(pl/tsl);
  printf "%-44s %12d %12d\n", "(b) PUTs made (" segs " segments)", pr, pl;
  printf "%-44s %12.2f %12.2f\n", "(b) seconds", ts, tsl;
  printf "%-44s %12.1f %12.1f\n", "(c) peak RSS, EMS run (MiB)", re/1024, rel/1024;
  printf "%-44s %12.1f %12.1f\n", "(c) peak RSS, upload run (MiB)", rs/1024, rsl/1024;
  peak = (re > rs ? re : rs) / 1024;
  printf "targets: upload ratio >= 0.9 (%s); peak RSS <= 15 MiB in every bench: %.1f MiB (%s)\n",
    ((pr/ts)/(pl/tsl) >= 0.9 ? "met" : "not met"), peak, (peak <= 15 ? "met" : "not met");
}'
if [[ $calls_replay -ne $((2 * streams)) || $puts_replay -ne $((2 * segments)) ]]; then
    echo "bench: expected $((2 * streams)) EMS calls and $((2 * segments)) PUTs from replay" >&2
    exit 1
fi

#!/usr/bin/env bash
# Backfill of an hour: `emstail replay` carrying out the net effect of STREAMS streams over
# MINUTES minutes (HLS 2 s chunks, DASH and HDS 6 s; EMS keeps 6 chunks a stream, deletes the
# rest, and a tenth of the streams end half way with their folders gone) to the local S3 test
# server, the logs rotated every 10 minutes with the older half gzipped, the media on tmpfs.
# Prints:
#   - the replay's wall time and its S3 requests (PUT, DELETE) per second, beside a bare loop
#     (examples/s3_put_loop.rs) making the same requests at the same concurrency (8);
#   - what the net effect left out, and the uploads found gone from disk;
#   - the time of a dry run over the same logs all gzipped against all plain (gz/plain);
#   - peak RSS (VmHWM, /usr/bin/time %M).
# Usage: bench/backfill.sh [STREAMS] [MINUTES]. Inputs go to bench/data/backfill, media to
# /dev/shm. ROUNDS (default 1) alternates loop and replay, each keeping its best.
# BENCH_PROFILE=dev runs debug builds (a check of the script, not a figure).
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${1:-50}
minutes=${2:-60}
workers=8
data=$PWD/bench/data/backfill
target=${CARGO_TARGET_DIR:-$PWD/target}
if [[ ${BENCH_PROFILE:-release} == dev ]]; then
    build=(cargo build --quiet)
    rel=$target/debug
else
    build=(cargo build --release --quiet)
    rel=$target/release
fi
shm=/dev/shm
[[ -d $shm && -w $shm ]] || shm=${TMPDIR:-/tmp}
media=$(mktemp -d "$shm/emstail-backfill.XXXXXX")
s3_env=$data/s3-server.env
cleanup() {
    if [[ -f $s3_env ]]; then scripts/s3-server.sh stop "$s3_env" >/dev/null 2>&1 || true; fi
    rm -rf -- "$media"
}
trap cleanup EXIT
rm -rf "$data"
mkdir -p "$data"

echo "building ($(basename "$rel"))..." >&2
"${build[@]}" --bin emstail --example s3_put_loop

echo "generating $minutes minutes of $streams streams..." >&2
python3 bench/gen_backfill.py "$data/plain" "$media/webroot" "$streams" "$minutes"
mkdir -p "$data/mixed" "$data/gz"
mapfile -t logs < <(find "$data/plain" -name 'events_*.txt' | sort)
half=$((${#logs[@]} / 2))
for i in "${!logs[@]}"; do
    name=$(basename "${logs[$i]}")
    gzip -c "${logs[$i]}" >"$data/gz/$name.gz"
    if ((i < half)); then
        cp "$data/gz/$name.gz" "$data/mixed/"
    else
        cp "${logs[$i]}" "$data/mixed/"
    fi
done

TMPDIR=$shm scripts/s3-server.sh "$s3_env" >/dev/null
set -a
# shellcheck disable=SC1090
. "$s3_env"
set +a
# s3s-fs keeps a bucket as a directory of its data dir.
mkdir "$EMSTAIL_S3_DATA_DIR/bench-replay" "$EMSTAIL_S3_DATA_DIR/bench-loop"
upload() {
    echo "\"$1\": { \"plugin_switch\": \"enabled\", \"parameters\": {
      \"aws_access_key\": \"$EMSTAIL_S3_ACCESS_KEY\", \"aws_secret_key\": \"$EMSTAIL_S3_SECRET_KEY\",
      \"default_bucket\": \"bench-replay\", \"endpoint\": \"$EMSTAIL_S3_ENDPOINT\" } }"
}
cat >"$data/backfill.ini" <<CFG
{
  "Service": { "ems_api": "http://127.0.0.1:9/", "state_dir": "$data/state", "workers": $workers,
               "media_root": ["$media/webroot"], "retry": { "max_attempts": 3, "max_backoff_secs": 1 } },
  $(upload AmazonHLSUpload),
  $(upload AmazonDASHUpload),
  $(upload AmazonHDSUpload)
}
CFG
chmod 600 "$data/backfill.ini"

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
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b > a) ? b : a }'; }

# The net set the replay carries out, as the bare loop's list: the same PUTs (of the files
# still on disk) and DELETEs, in the replay's order.
RUST_LOG=error "$rel/emstail" replay --config "$data/backfill.ini" --dry-run --json \
    "$data/mixed/events_*" >"$data/net.jsonl" 2>"$data/net.err"
python3 - "$data/net.jsonl" "$data/requests.tsv" <<'PY'
import json, os, sys
with open(sys.argv[1]) as net, open(sys.argv[2], "w") as out:
    for line in net:
        a = json.loads(line)
        if a["kind"] == "s3_put" and os.path.exists(a["path"]):
            out.write("%s\t%s\n" % (a["key"], a["path"]))
        elif a["kind"] == "s3_delete":
            out.write("%s\t\n" % a["key"])
PY
requests=$(wc -l <"$data/requests.tsv")
puts=$(grep -vc $'\t$' "$data/requests.tsv" || true)

echo "measuring ($requests S3 requests a run)..." >&2
t_replay="" rss_replay="" t_loop="" rss_loop=""
for _ in $(seq "${ROUNDS:-1}"); do
    read -r t rss < <(measure loop "$rel/examples/s3_put_loop" --endpoint "$EMSTAIL_S3_ENDPOINT" \
        --bucket bench-loop --list "$data/requests.tsv" --concurrency "$workers")
    t_loop=$(min "$t_loop" "$t") rss_loop=$(max "$rss_loop" "$rss")
    rm -rf "$data/state"
    read -r t rss < <(measure replay env RUST_LOG=warn "$rel/emstail" replay --config "$data/backfill.ini" \
        --report-json "$data/report.json" "$data/mixed/events_*")
    t_replay=$(min "$t_replay" "$t") rss_replay=$(max "$rss_replay" "$rss")
done
t_plain="" t_gz="" rss_dry=""
for _ in $(seq "${ROUNDS:-1}"); do
    read -r t rss < <(measure dry-plain env RUST_LOG=error "$rel/emstail" replay --config "$data/backfill.ini" \
        --dry-run --json "$data/plain")
    t_plain=$(min "$t_plain" "$t") rss_dry=$(max "$rss_dry" "$rss")
    read -r t rss < <(measure dry-gz env RUST_LOG=error "$rel/emstail" replay --config "$data/backfill.ini" \
        --dry-run --json "$data/gz")
    t_gz=$(min "$t_gz" "$t") rss_dry=$(max "$rss_dry" "$rss")
done
cmp -s "$data/dry-plain.out" <(sed 's/\.txt\.gz"/.txt"/; s#/gz/#/plain/#' "$data/dry-gz.out") ||
    echo "bench: warning: the gz and plain dry runs differ beyond the file names" >&2

read -r lines events deleted superseded gone done_ dead < <(python3 - "$data/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["plugins"].values()
skipped = lambda why: sum(x.get("skipped", {}).get(why, 0) for x in p)
print(r["lines"], r["events"], skipped("deleted later in the window"), skipped("superseded playlist"),
      sum(x.get("gone_from_disk", 0) for x in p), sum(x.get("done", 0) for x in p),
      sum(x.get("dead_letters", 0) for x in p))
PY
)
bytes_plain=$(du -cb "$data/plain"/* | tail -1 | cut -f1)
bytes_mixed=$(du -cb "$data/mixed"/* | tail -1 | cut -f1)
awk -v tr="$t_replay" -v tl="$t_loop" -v req="$requests" -v puts="$puts" -v done_="$done_" \
    -v dead="$dead" -v gone="$gone" -v deleted="$deleted" -v superseded="$superseded" \
    -v lines="$lines" -v events="$events" -v tp="$t_plain" -v tg="$t_gz" -v bp="$bytes_plain" \
    -v bm="$bytes_mixed" -v rr="$rss_replay" -v rl="$rss_loop" -v rd="$rss_dry" \
    -v s="$streams" -v m="$minutes" 'BEGIN {
  printf "backfill of %d streams x %d min: %d lines, %d events, %.1f MB of logs (%.1f MB on disk, half gzipped)\n", s, m, lines, events, bp/1e6, bm/1e6;
  printf "%-48s %12s %12s %8s\n", "measure (workers = 8)", "replay", "bare loop", "ratio";
  printf "%-48s %12.2f %12.2f %8.3f\n", "wall seconds", tr, tl, tl/tr;
  printf "%-48s %12.0f %12.0f %8.3f\n", "S3 requests/s (" puts " PUTs + " req-puts " DELETEs)", req/tr, req/tl, (req/tr)/(req/tl);
  printf "%-48s %12.0f %12.0f %8.3f\n", "PUTs/s (the same PUTs, among the same DELETEs)", puts/tr, puts/tl, (puts/tr)/(puts/tl);
  printf "%-48s %12d %12s\n", "requests done by the replay", done_, "-";
  printf "%-48s %12d %12s\n", "left out by net effect: deleted later", deleted, "-";
  printf "%-48s %12d %12s\n", "left out by net effect: superseded playlists", superseded, "-";
  printf "%-48s %12d %12s\n", "uploads gone from disk (counted, not tried)", gone, "-";
  printf "%-48s %12d %12s\n", "dead letters", dead, "-";
  printf "%-48s %12.2f %12.2f %8.3f\n", "dry run seconds: all gz vs all plain (gz/plain)", tg, tp, tg/tp;
  printf "%-48s %12.1f %12.1f\n", "peak RSS, replay carried out / loop (MiB)", rr/1024, rl/1024;
  printf "%-48s %12.1f %12s\n", "peak RSS, dry runs (MiB)", rd/1024, "-";
}'
if ((dead > 0 || done_ != requests)); then
    echo "bench: expected the replay to carry out the $requests requests of the loop" >&2
    exit 1
fi

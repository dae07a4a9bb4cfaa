# Sourced by bench/follow.sh and bench/follow_ab.sh.
# start_recorder_ems WORK BIN: starts BIN/examples/fake_ems on a free loopback port, logging the
# calls it gets to WORK/calls.jsonl, and writes WORK/config.ini for emstail: that EMS, 8 workers,
# StreamRecorder on. Sets fake_pid and api (the fake EMS's URL).
start_recorder_ems() {
  local work=$1 bin=$2
  "$bin/examples/fake_ems" --port 0 --ignore-stdin --max-secs 3600 --log "$work/calls.jsonl" \
    > "$work/fake.out" 2> "$work/fake.err" &
  fake_pid=$!
  for _ in $(seq 100); do grep -q listening "$work/fake.out" 2>/dev/null && break; sleep 0.05; done
  api=$(sed -n 's/^listening on \(http:[^ ]*\)\/$/\1/p' "$work/fake.out")
  cat > "$work/config.ini" <<CFG
{ "Service": { "ems_api": "$api", "workers": 8 },
  "StreamRecorder": { "plugin_switch": "enabled", "parameters": { "file_location": "/var/evostreamms/media" } } }
CFG
}

#!/usr/bin/env bash
# A local S3 server (s3s-fs) for the S3 tests: real SigV4 checks, data in a temp directory.
#
#   scripts/s3-server.sh [ENV_FILE]        start; write the EMSTAIL_S3_* variables to ENV_FILE
#   scripts/s3-server.sh stop [ENV_FILE]   stop the server that ENV_FILE describes, remove its data
#
# ENV_FILE defaults to target/s3-server.env in the repository. Source it before `cargo test`:
#   scripts/s3-server.sh && . target/s3-server.env && cargo test --test s3_exec
# EMSTAIL_S3_PORT picks the port (default: a free one).
set -euo pipefail

S3S_VERSION=0.14.1
ACCESS_KEY=emstail-test-access
SECRET_KEY=emstail-test-secret-0123456789
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "s3-server.sh: $*" >&2
    exit 1
}

default_env_file() {
    echo "$repo/target/s3-server.env"
}

stop_server() {
    local env_file=${1:-$(default_env_file)}
    [[ -f $env_file ]] || die "$env_file not found: nothing to stop"
    local pid data_dir
    pid=$(sed -n 's/^export EMSTAIL_S3_PID=//p' "$env_file")
    data_dir=$(sed -n 's/^export EMSTAIL_S3_DATA_DIR=//p' "$env_file")
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        echo "stopped s3s-fs (pid $pid)"
    else
        echo "s3s-fs (pid ${pid:-?}) was not running"
    fi
    # Only ever remove the temp directory this script made.
    local root
    root=$(dirname "$data_dir")
    if [[ $(basename "$root") == emstail-s3.* ]]; then
        rm -rf -- "$root"
    fi
    rm -f -- "$env_file"
}

ensure_installed() {
    local have=""
    if command -v s3s-fs >/dev/null 2>&1; then
        have=$(s3s-fs --version 2>/dev/null | awk '{print $2}')
    fi
    if [[ $have != "$S3S_VERSION" ]]; then
        echo "installing s3s-fs $S3S_VERSION (found: ${have:-none})" >&2
        # S3S_FS_DEBUG=1 (.ci/run) builds it unoptimised, in about 3 minutes rather than 5:
        # the tests' objects are small. The benchmarks want the optimised build.
        local flags=(--features binary --locked)
        [[ ${S3S_FS_DEBUG:-} == 1 ]] && flags+=(--debug)
        cargo install "s3s-fs@$S3S_VERSION" "${flags[@]}" >&2
    fi
    command -v s3s-fs >/dev/null 2>&1 || die "s3s-fs is not on PATH after installing (is ~/.cargo/bin on PATH?)"
}

free_port() {
    if [[ -n ${EMSTAIL_S3_PORT:-} ]]; then
        echo "$EMSTAIL_S3_PORT"
        return
    fi
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_server() {
    local env_file=${1:-$(default_env_file)}
    ensure_installed
    local port root data_dir log pid
    port=$(free_port)
    if port_answers "$port"; then
        die "port $port is already in use"
    fi
    root=$(mktemp -d "${TMPDIR:-/tmp}/emstail-s3.XXXXXX")
    data_dir=$root/data
    log=$root/s3s-fs.log
    mkdir -p "$data_dir"
    setsid s3s-fs --host 127.0.0.1 --port "$port" \
        --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" \
        "$data_dir" >"$log" 2>&1 </dev/null &
    pid=$!
    # Bounded wait: 300 × 0.1 s.
    for _ in $(seq 300); do
        if port_answers "$port"; then
            break
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2
            rm -rf -- "$root"
            die "s3s-fs exited before listening on port $port"
        fi
        sleep 0.1
    done
    if ! port_answers "$port"; then
        kill "$pid" 2>/dev/null || true
        rm -rf -- "$root"
        die "s3s-fs did not answer on port $port within 30 s"
    fi
    mkdir -p "$(dirname "$env_file")"
    cat >"$env_file" <<EOF
export EMSTAIL_S3_ENDPOINT=http://127.0.0.1:$port
export EMSTAIL_S3_ACCESS_KEY=$ACCESS_KEY
export EMSTAIL_S3_SECRET_KEY=$SECRET_KEY
export EMSTAIL_S3_DATA_DIR=$data_dir
export EMSTAIL_S3_PID=$pid
EOF
    cat "$env_file"
    echo "# log: $log; stop with: $0 stop $env_file" >&2
}

case ${1:-} in
stop) stop_server "${2:-}" ;;
-h | --help) sed -n '2,9p' "$0" ;;
*) start_server "${1:-}" ;;
esac

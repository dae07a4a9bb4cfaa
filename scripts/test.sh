#!/usr/bin/env bash
# The whole test suite: starts the S3 test server (installing it on first use), runs every
# test against it and the fake EMS, and stops the server again.
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=target/s3-server.env
mkdir -p target
scripts/s3-server.sh "$env_file"
trap 'scripts/s3-server.sh stop "$env_file" >/dev/null 2>&1 || true' EXIT
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
out=target/test-output.txt
cargo test --lib --tests "$@" 2>&1 | tee "$out"
# One closing line for the whole suite.
awk '/^test result:/ { p += $4; f += $6 } END { printf "emstail: %d passed, %d failed\n", p, f }' "$out"

#!/usr/bin/env bash
# Kinesis Queues: a backlog of RECORDS 100-byte records behind a TRIM_HORIZON queue on an
# on-demand stream of a release server (throughput limits off, fsync always), the server's RSS
# with the whole backlog unreceived, then receive+acknowledge throughput with CONSUMERS
# competing consumers (ReceiveQueueRecords of 10, then AcknowledgeQueueRecords of those 10).
#   bash bench/queues.sh [RECORDS] [CONSUMERS]        (defaults 1000000 and 8; not run in CI)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo_root/target}/release"
bin="${MILLRACE_BIN:-$target/millrace}"
bench="${MILLRACE_BENCH_BIN:-$target/millrace-bench}"
records="${1:-1000000}"
consumers="${2:-8}"
work="$(mktemp -d)"
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --throughput-limits off \
    >"$work/out" 2>"$work/err" &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
endpoint="$(sed -n 's/^listening on //p' "$work/out")"
"$bench" queues --endpoint "$endpoint" --server-pid "$server_pid" --records "$records" \
    --consumers "$consumers" --max-duration "${MAX_DURATION:-600}"

#!/usr/bin/env bash
# Producer throughput: user records per second through `millrace put` (the producer library)
# into a one-shard stream of a release server with throughput limits on, 100-byte records,
# with KPL aggregation (one partition key, and a random key per record) and without.
#   bash bench/producer.sh [RECORDS]        (default 200000; the run without aggregation uses RECORDS/10)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${MILLRACE_BIN:-${CARGO_TARGET_DIR:-$repo_root/target}/release/millrace}"
records="${1:-200000}"
work="$(mktemp -d)"
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --throughput-limits on >"$work/out" 2>"$work/err" &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
endpoint="$(sed -n 's/^listening on //p' "$work/out")"
line="$(printf '%0100d' 0)"
yes "$line" | head -n "$records" >"$work/records" || true
yes "$line" | head -n "$((records / 10))" >"$work/records-small" || true

run() {
    local name="$1" stream="$2" file="$3"
    shift 3
    "$bin" streams create "$stream" --shards 1 --endpoint-url "$endpoint" 2>/dev/null
    local n start end
    n="$(wc -l <"$file")"
    start="$(date +%s.%N)"
    "$bin" put --stream "$stream" --endpoint-url "$endpoint" "$@" <"$file" 2>"$work/put.err" || true
    end="$(date +%s.%N)"
    printf '%-40s %8d records  %6.2f s  %8.0f user records/s   (%s)\n' "$name" "$n" \
        "$(echo "$end - $start" | bc)" "$(echo "$n / ($end - $start)" | bc -l)" "$(tail -n 1 "$work/put.err")"
}

run "aggregated, one partition key" agg1 "$work/records" --partition-key k
run "aggregated, random key per record" aggr "$work/records"
run "not aggregated, one partition key" plain "$work/records-small" --partition-key k --no-aggregation

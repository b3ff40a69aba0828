#!/usr/bin/env bash
# Smoke test of every millrace-bench workload against Millrace only: each runs for about 2 s with small sizes and
# must print a JSON result with nonzero throughput. No timing assertions, so a slow machine does not fail it.
# Also runs `put` against the ceiling server. Ends with a plain `N passed, M failed` line; exits non-zero on failure.
# Usage: bench/smoke.sh            (builds debug binaries first)
#        MILLRACE_BIN=... MILLRACE_BENCH_BIN=... bench/smoke.sh   (use given binaries, no build)
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
source bench/lib.sh

if [[ -z "${MILLRACE_BIN:-}" || -z "${MILLRACE_BENCH_BIN:-}" ]]; then
    cargo build -p millrace-cli -p millrace-bench || { echo "0 passed, 1 failed"; exit 1; }
fi
MILLRACE="${MILLRACE_BIN:-${CARGO_TARGET_DIR:-$repo_root/target}/debug/millrace}"
BENCH="${MILLRACE_BENCH_BIN:-${CARGO_TARGET_DIR:-$repo_root/target}/debug/millrace-bench}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/millrace-smoke.XXXXXX")"
trap 'stop_all_servers; rm -rf "$scratch"' EXIT
# Rate limits would turn most of a benchmark's writes into throttling errors; they are not what is tested here.
export MILLRACE_THROUGHPUT_LIMITS=off

passed=0
failed=0

# check NAME FIELD FILE: the result file holds JSON whose FIELD is a number above zero.
check() {
    local name="$1" field="$2" file="$3"
    if python3 - "$file" "$field" <<'EOF'; then
import json, sys
with open(sys.argv[1]) as f:
    result = json.load(f)
value = result.get(sys.argv[2])
print(f"  {sys.argv[2]} = {value}", file=sys.stderr)
sys.exit(0 if isinstance(value, (int, float)) and value > 0 else 1)
EOF
        echo "PASS  $name"
        passed=$((passed + 1))
    else
        echo "FAIL  $name (no JSON result with $field > 0)"
        failed=$((failed + 1))
    fi
}

# run NAME FIELD WORKLOAD ARGS...: one workload against the running server.
run() {
    local name="$1" field="$2" workload="$3"
    shift 3
    local out="$scratch/$name.json"
    echo "--- $name" >&2
    if timeout 120 "$BENCH" "$workload" --endpoint "$SERVER_URL" --server-pid "$SERVER_PID" --out "$out" "$@" \
        >/dev/null; then
        check "$name" "$field" "$out"
    else
        echo "FAIL  $name (millrace-bench exited non-zero)"
        failed=$((failed + 1))
    fi
}

if start_listening_server "$scratch/millrace" "$MILLRACE" serve --listen 127.0.0.1:0 \
    --data-dir "$scratch/data" --shard-limit 10000; then
    run put records_per_s put --duration 2 --batch 50 --record-size 256 --connections 2 --shards 2
    run put-single records_per_s put-single --duration 2 --record-size 100 --connections 2 --shards 2
    run get records_per_s get --records 2000 --batch 100 --fill-connections 2 --shards 2
    run mixed records_per_s mixed --duration 2 --producers 2 --batch 20 --rate 2000 --shards 2
    run fanout delivered_records fanout --duration 2 --consumers 2 --shards 2 --rate 200
    run shards shards_per_s shards --streams 2 --shards 10 --settle 0.2
    run queues records_per_s queues --records 2000 --consumers 2 --fill-connections 2 --max-duration 30
    stop_server "$SERVER_PID"
else
    echo "FAIL  start millrace"
    failed=$((failed + 1))
fi

echo "--- restart" >&2
port="$(free_port)"
if timeout 120 "$BENCH" restart --endpoint "http://127.0.0.1:$port" --data-gb 0.005 --record-size 10000 \
    --batch 10 --connections 2 --shards 2 --out "$scratch/restart.json" --server-log "$scratch/restart.log" -- \
    "$MILLRACE" serve --listen "127.0.0.1:$port" --data-dir "$scratch/restart-data" >/dev/null; then
    check restart time_to_serving_s "$scratch/restart.json"
else
    echo "FAIL  restart (millrace-bench exited non-zero)"
    failed=$((failed + 1))
fi

if start_listening_server "$scratch/ceiling" "$BENCH" ceiling-server --listen 127.0.0.1:0; then
    run ceiling-put records_per_s put --duration 1 --batch 50 --record-size 256 --connections 2 --shards 1
    stop_server "$SERVER_PID"
else
    echo "FAIL  start the ceiling server"
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

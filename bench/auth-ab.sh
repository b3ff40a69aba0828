#!/usr/bin/env bash
# Authentication cost on a busy machine: alternates `--auth open` and `--auth enforce` servers
# (fsync always, fresh data directory each) for ROUNDS rounds of one millrace-bench workload and
# prints records/s and the server's CPU seconds per million records of each run.
#
# Usage: bench/auth-ab.sh put --batch 500 --record-size 1024 --connections 8 --shards 4 --duration 8
#        ROUNDS=5 bench/auth-ab.sh put-single --record-size 100 --connections 16 --shards 4 --duration 8
# Uses target/release/{millrace,millrace-bench} (built if missing).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
source bench/lib.sh
[[ -x target/release/millrace && -x target/release/millrace-bench ]] ||
    cargo build --release -p millrace-cli -p millrace-bench
MILLRACE="$repo_root/target/release/millrace"
BENCH="$repo_root/target/release/millrace-bench"
workload="$1"
shift
scratch="$(mktemp -d "${TMPDIR:-/tmp}/millrace-auth-ab.XXXXXX")"
trap 'stop_all_servers; rm -rf "$scratch"' EXIT
for round in $(seq 1 "${ROUNDS:-3}"); do
    for mode in open enforce; do
        prefix="$scratch/$mode-$round"
        extra=()
        [[ "$mode" == enforce ]] && extra=(--auth enforce --root-access-key-id AKIDMILLRACEBENCH
            --root-secret-access-key bench-secret-key)
        MILLRACE_THROUGHPUT_LIMITS=off start_listening_server "$prefix" "$MILLRACE" serve \
            --listen 127.0.0.1:0 --data-dir "$prefix.data" --fsync always --shard-limit 100000 "${extra[@]}"
        "$BENCH" "$workload" --endpoint "$SERVER_URL" --server-pid "$SERVER_PID" --out "$prefix.json" "$@" >/dev/null
        stop_server "$SERVER_PID"
        python3 - "$prefix.json" "$mode" "$round" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
print(f"round {sys.argv[3]} {sys.argv[2]:8} {run['records_per_s']:>12,.0f} rec/s  "
      f"{run['server']['cpu_seconds_per_million_records']:>8.3f} server CPU s per million records")
PY
    done
done

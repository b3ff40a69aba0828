#!/usr/bin/env bash
# Throughput of one write workload with metrics on and off (`--metrics on|off`), alternating runs against fresh
# release servers on this machine; prints records/s of every run and the on/off ratio of the medians.
# Usage: bench/metrics_overhead.sh [RUNS] [WORKLOAD ARGS...]
#   default: 3 runs each of `put --batch 500 --record-size 100 --connections 8 --shards 4 --duration 8`
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
source bench/lib.sh

runs="${1:-3}"
shift || true
workload=("$@")
if [[ ${#workload[@]} -eq 0 ]]; then
    workload=(put --batch 500 --record-size 100 --connections 8 --shards 4 --duration 8)
fi
target="${CARGO_TARGET_DIR:-$repo_root/target}/release"
cargo build --release -p millrace-cli -p millrace-bench >&2 || exit 1

scratch="$(mktemp -d "${TMPDIR:-/tmp}/millrace-metrics-bench.XXXXXX")"
trap 'stop_all_servers; rm -rf "$scratch"' EXIT
declare -A results=([on]="" [off]="")

for ((run = 1; run <= runs; run++)); do
    for mode in off on; do
        dir="$scratch/$mode-$run"
        start_listening_server "$dir" "$target/millrace" serve --listen 127.0.0.1:0 --data-dir "$dir-data" \
            --throughput-limits off --metrics "$mode" || exit 1
        "$target/millrace-bench" "${workload[@]}" --endpoint "$SERVER_URL" --server-pid "$SERVER_PID" \
            --out "$dir.json" >/dev/null 2>"$dir.bench.stderr" || { cat "$dir.bench.stderr" >&2; exit 1; }
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null
        rate="$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["records_per_s"]))' "$dir.json")"
        echo "run $run metrics $mode: $rate records/s"
        results[$mode]+="$rate "
    done
done
python3 - "${results[on]}" "${results[off]}" <<'PY'
import statistics, sys
on = [float(x) for x in sys.argv[1].split()]
off = [float(x) for x in sys.argv[2].split()]
print(f"median on {statistics.median(on):.0f}, off {statistics.median(off):.0f} records/s: "
      f"on/off = {statistics.median(on) / statistics.median(off):.3f}")
PY

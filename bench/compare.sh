#!/usr/bin/env bash
# Side-by-side benchmark: the same millrace-bench workloads against
#   millrace (fsync always), millrace (fsync never), ferrokinesis (in memory), ferrokinesis (durable, --state-dir),
#   kinesalite (in memory), and the ceiling server (PutRecords workloads only),
# then writes the measured section of BENCHMARKS.md (bench/report.py keeps the hand-written notes around it).
#
# Usage: bench/compare.sh                 full run (about 20 minutes on 2 cores)
#        DURATION=3 RESTART_GB=1 bench/compare.sh   a shorter run
# Knobs (environment): DURATION (s per timed workload, default 12), GET_RECORDS (records drained, default 500000;
# kinesalite drains KINESALITE_GET_RECORDS, default 100000), SHARD_STREAMS x SHARD_COUNT (default 10 x 1000),
# SCALING_SHARDS (default "1 10 100 1000"; empty skips), SCALING_ROUNDS (default 2: the sweep runs up, then down,
# and each count's figures are the mean of its rounds), AUTH_ROWS (default 1: Millrace with --auth enforce;
# 0 skips), RESTART_GB (default 10; 0 skips), FERRO_RESTART_GB (default 0.1: its durable mode fills at about 2 MB/s),
# SERVERS (default "millrace-always millrace-never ferrokinesis-memory ferrokinesis-durable kinesalite ceiling"),
# ONLY (workloads to run, default "put-1k put-100b put-single get mixed shards scaling neighbour restart"; scaling,
# neighbour and restart are Millrace-only rows), NEIGHBOUR_GB (what the neighbour's dd writes, default 6), RESULTS (add to an
# existing results directory instead of starting a new run; its machine.json is kept), SKIP_BUILD=1 (reuse the
# binaries pinned in target/bench-peers/bin by an earlier run), REPORT=off (leave BENCHMARKS.md alone, for a
# partial run).
# Peers are installed without root into target/bench-peers/ (ferrokinesis with cargo install --root, kinesalite
# with npm); a peer that fails to install is reported and skipped. Raw JSON results: target/bench-results/<run>/.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
source bench/lib.sh

DURATION="${DURATION:-12}"
GET_RECORDS="${GET_RECORDS:-500000}"
KINESALITE_GET_RECORDS="${KINESALITE_GET_RECORDS:-100000}"
SHARD_STREAMS="${SHARD_STREAMS:-10}"
SHARD_COUNT="${SHARD_COUNT:-1000}"
SCALING_SHARDS="${SCALING_SHARDS-1 10 100 1000}"
SCALING_ROUNDS="${SCALING_ROUNDS:-2}"
RESTART_GB="${RESTART_GB:-10}"
FERRO_RESTART_GB="${FERRO_RESTART_GB:-0.1}"
SERVERS="${SERVERS:-millrace-always millrace-never ferrokinesis-memory ferrokinesis-durable kinesalite ceiling}"
FERROKINESIS_VERSION="0.7.0"
KINESALITE_VERSION="3.3.3"

peers="$repo_root/target/bench-peers"
ONLY="${ONLY:-put-1k put-100b put-single get mixed shards scaling neighbour restart}"
NEIGHBOUR_GB="${NEIGHBOUR_GB:-6}"
run_id="$(date -u +%Y%m%dT%H%M%SZ)"
results="${RESULTS:-$repo_root/target/bench-results/$run_id}"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/millrace-bench.XXXXXX")"
mkdir -p "$peers/bin" "$results"
trap 'stop_all_servers; rm -rf "$scratch"' EXIT

say() { printf '\n=== %s ===\n' "$*" >&2; }

# --- build and pin the binaries, so edits made during the run change nothing -------------------------------
if [[ "${SKIP_BUILD:-0}" == 1 && -x "$peers/bin/millrace" && -x "$peers/bin/millrace-bench" ]]; then
    say "SKIP_BUILD=1: using the pinned binaries in $peers/bin"
else
    say "build millrace and millrace-bench (release)"
    cargo build --release -p millrace-cli -p millrace-bench || exit 1
    cp target/release/millrace "$peers/bin/millrace"
    cp target/release/millrace-bench "$peers/bin/millrace-bench"
fi
MILLRACE="$peers/bin/millrace"
BENCH="$peers/bin/millrace-bench"

# --- peers --------------------------------------------------------------------------------------------------
FERRO="$peers/ferrokinesis/bin/ferrokinesis"
if [[ ! -x "$FERRO" && " $SERVERS " == *" ferrokinesis-"* ]]; then
    say "install ferrokinesis $FERROKINESIS_VERSION (cargo install --root)"
    if ! cargo install --root "$peers/ferrokinesis" ferrokinesis --version "$FERROKINESIS_VERSION" --locked; then
        echo "SKIP: ferrokinesis failed to install; continuing without it" >&2
    fi
fi
KINESALITE="$peers/kinesalite/node_modules/kinesalite/cli.js"
if [[ ! -f "$KINESALITE" && " $SERVERS " == *" kinesalite "* ]]; then
    say "install kinesalite $KINESALITE_VERSION (npm)"
    if ! npm install --prefix "$peers/kinesalite" "kinesalite@$KINESALITE_VERSION" --no-audit --no-fund; then
        echo "SKIP: kinesalite failed to install; continuing without it" >&2
    fi
fi
available() {
    case "$1" in
        ferrokinesis-*) [[ -x "$FERRO" ]] ;;
        kinesalite) [[ -f "$KINESALITE" ]] && command -v node >/dev/null ;;
        *) true ;;
    esac
}

# --- the machine --------------------------------------------------------------------------------------------
say "machine facts"
# The build above leaves hundreds of MB of dirty pages that the kernel writes back over the next half minute:
# flushed now, so that neither the probe nor the first rows compete with them.
sync
fsync_rate="$(python3 - "$scratch" <<'EOF'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
block = b"x" * 4096
count, start = 0, time.monotonic()
while time.monotonic() - start < 2.0:
    os.pwrite(fd, block, (count % 256) * 4096)
    os.fdatasync(fd)
    count += 1
os.close(fd)
print(round(count / (time.monotonic() - start)))
EOF
)"
[[ -f "$results/machine.json" ]] && machine_file="$results/machine.$run_id.json" || machine_file="$results/machine.json"
cat >"$machine_file" <<EOF
{"cores": $(nproc), "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//;s/"//g')",
 "memory_gib": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),
 "fsync_4k_per_s": ${fsync_rate:-0}, "kernel": "$(uname -r)", "run_id": "$run_id",
 "millrace_commit": "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- crates 2>/dev/null || echo '+uncommitted')",
 "command": "$(printf '%q ' DURATION="$DURATION" GET_RECORDS="$GET_RECORDS" RESTART_GB="$RESTART_GB" bench/compare.sh)",
 "ferrokinesis": "$FERROKINESIS_VERSION", "kinesalite": "$KINESALITE_VERSION"}
EOF
cat "$machine_file" >&2

# --- servers ------------------------------------------------------------------------------------------------
# start NAME: starts a fresh server of that kind with empty storage; sets SERVER_PID and SERVER_URL.
start() {
    local name="$1" prefix="$scratch/$1-$RANDOM" port
    local data="$prefix.data"
    case "$name" in
        millrace-always | millrace-never)
            MILLRACE_THROUGHPUT_LIMITS=off start_listening_server "$prefix" "$MILLRACE" serve \
                --listen 127.0.0.1:0 --data-dir "$data" --fsync "${name#millrace-}" --shard-limit 100000
            ;;
        millrace-enforce)
            # Signatures verified and every request authorized by policy; the load generator's
            # credentials are the root's, so each request runs the whole evaluation (no identity
            # policy needed for root, the stream's resource policy still consulted).
            MILLRACE_THROUGHPUT_LIMITS=off start_listening_server "$prefix" "$MILLRACE" serve \
                --listen 127.0.0.1:0 --data-dir "$data" --fsync always --shard-limit 100000 \
                --auth enforce --root-access-key-id AKIDMILLRACEBENCH --root-secret-access-key bench-secret-key
            ;;
        ceiling)
            start_listening_server "$prefix" "$BENCH" ceiling-server --listen 127.0.0.1:0
            ;;
        ferrokinesis-memory)
            port="$(free_port)"
            start_port_server "$prefix" "$port" "$FERRO" serve --port "$port" --create-stream-ms 0 \
                --delete-stream-ms 0 --shard-limit 100000 --enforce-limits false --max-request-body-mb 64 \
                --log-level warn
            ;;
        ferrokinesis-durable)
            port="$(free_port)"
            start_port_server "$prefix" "$port" "$FERRO" serve --port "$port" --create-stream-ms 0 \
                --delete-stream-ms 0 --shard-limit 100000 --enforce-limits false --max-request-body-mb 64 \
                --log-level warn --state-dir "$data"
            ;;
        kinesalite)
            port="$(free_port)"
            start_port_server "$prefix" "$port" node --max-old-space-size=8192 "$KINESALITE" --port "$port" \
                --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 --shardLimit 100000
            ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
}

# bench SERVER TAG WORKLOAD ARGS...: runs one workload against a fresh server; the result goes to SERVER__TAG.json.
bench() {
    local server="$1" tag="$2" workload="$3"
    shift 3
    local out="$results/${server}__${tag}.json"
    [[ " $ONLY " == *" $tag "* || " $ONLY " == *" ${tag%%-*} "* ]] || return 0
    say "$server: $tag"
    # Each row starts on a disk with nothing left to write back from the rows before it (the neighbour's row
    # skips this: it measures a disk that is busy on purpose).
    [[ "${QUIET_DISK:-1}" == 1 ]] && sync
    if ! start "$server"; then
        echo "FAILED to start $server" >&2
        return 0
    fi
    local pid="$SERVER_PID"
    if ! timeout 300 "$BENCH" "$workload" --endpoint "$SERVER_URL" --server-pid "$pid" --label "$server" \
        --out "$out" "$@" >/dev/null; then
        echo "FAILED: $server $tag" >&2
        rm -f "$out"
    fi
    stop_server "$pid"
}

# Millrace's authentication and authorization cost: `--auth enforce` right after the open row of the same
# workload, so that the two are measured minutes apart, not a whole run apart (the disk's speed drifts).
auth_row() {
    [[ "$server" == millrace-always && "${AUTH_ROWS:-1}" == 1 ]] || return 0
    bench millrace-enforce "$@"
}

# Workload after workload, every server in turn: the rows a ratio compares run minutes apart, not a whole run
# apart (run 10 measured Millrace's rows in a slow first quarter of an hour and the peers' in a fast second one).
for workload in put-1k put-100b put-single get mixed shards; do
    for server in $SERVERS; do
        available "$server" || continue
        [[ "$server" == ceiling && "$workload" != put-* ]] && continue
        case "$workload" in
        put-1k)
            bench "$server" put-1k put --batch 500 --record-size 1024 --connections 8 --shards 4 --duration "$DURATION"
            auth_row put-1k put --batch 500 --record-size 1024 --connections 8 --shards 4 --duration "$DURATION"
            ;;
        put-100b)
            bench "$server" put-100b put --batch 500 --record-size 100 --connections 8 --shards 4 \
                --duration "$DURATION"
            ;;
        put-single)
            bench "$server" put-single put-single --record-size 100 --connections 16 --shards 4 --duration "$DURATION"
            auth_row put-single put-single --record-size 100 --connections 16 --shards 4 --duration "$DURATION"
            ;;
        get)
            records="$GET_RECORDS"
            [[ "$server" == kinesalite ]] && records="$KINESALITE_GET_RECORDS"
            bench "$server" get get --records "$records" --record-size 1024 --shards 4
            ;;
        mixed)
            bench "$server" mixed mixed --producers 4 --batch 100 --record-size 1024 --rate 20000 --shards 4 \
                --duration "$DURATION"
            ;;
        shards)
            bench "$server" shards shards --streams "$SHARD_STREAMS" --shards "$SHARD_COUNT" --connections 4 --touch
            ;;
        esac
    done
done
for server in $SERVERS; do
    available "$server" || echo "SKIP: $server is not installed" >&2
done

# --- Millrace: throughput against shard count ----------------------------------------------------------------
# The target is the lowest row over the highest, and one row of four can be 10 % off on this shared disk: each
# count is measured SCALING_ROUNDS times, the sweep going up and then down so that a drift during the run meets
# every count alike, and bench/report.py reports the mean of each count's rounds next to every round's figure.
scaling_down="$(printf '%s\n' $SCALING_SHARDS | tac | tr '\n' ' ')"
for ((round = 1; round <= SCALING_ROUNDS; round++)); do
    sweep="$SCALING_SHARDS"
    ((round % 2 == 0)) && sweep="$scaling_down"
    for shards in $sweep; do
        tag="scaling-$shards"
        ((round > 1)) && tag="scaling-$shards-r$round"
        bench millrace-always "$tag" put --batch 500 --record-size 1024 --connections 8 --shards "$shards" \
            --duration "$DURATION"
    done
done

# --- Millrace: PutRecords while a neighbour process writes gigabytes to the same file system -----------------
# A plain `dd` into the scratch directory (the data directories' file system); a server that flushed the whole
# file system (syncfs) would wait for the neighbour's data too.
if [[ " $ONLY " == *" neighbour "* ]]; then
    bench millrace-always neighbour-quiet put --batch 500 --record-size 1024 --connections 8 --shards 4 \
        --duration "$DURATION"
    say "neighbour: dd of $NEIGHBOUR_GB GB into $scratch"
    dd if=/dev/zero of="$scratch/neighbour.bin" bs=1M count=$((NEIGHBOUR_GB * 1024)) status=none &
    dd_pid=$!
    sleep 1
    QUIET_DISK=0 bench millrace-always neighbour-busy put --batch 500 --record-size 1024 --connections 8 \
        --shards 4 --duration "$DURATION"
    kill "$dd_pid" 2>/dev/null
    wait "$dd_pid" 2>/dev/null
    rm -f "$scratch/neighbour.bin"
fi

# --- restart after SIGKILL -------------------------------------------------------------------------------------
if [[ "$RESTART_GB" != 0 && " $ONLY " == *" restart "* ]]; then
    say "millrace: restart with $RESTART_GB GB"
    sync
    port="$(free_port)"
    MILLRACE_THROUGHPUT_LIMITS=off timeout 1800 "$BENCH" restart --endpoint "http://127.0.0.1:$port" \
        --data-gb "$RESTART_GB" --label millrace-always --out "$results/millrace-always__restart.json" \
        --server-log "$scratch/restart-millrace.log" -- \
        "$MILLRACE" serve --listen "127.0.0.1:$port" --data-dir "$scratch/restart-millrace" --fsync always \
        >/dev/null || echo "FAILED: millrace restart" >&2
    rm -rf "$scratch/restart-millrace"
fi
if [[ "$FERRO_RESTART_GB" != 0 && " $ONLY " == *" restart "* ]] && available ferrokinesis-durable; then
    say "ferrokinesis (durable): restart with $FERRO_RESTART_GB GB"
    port="$(free_port)"
    timeout 1800 "$BENCH" restart --endpoint "http://127.0.0.1:$port" --data-gb "$FERRO_RESTART_GB" \
        --label ferrokinesis-durable --out "$results/ferrokinesis-durable__restart.json" \
        --server-log "$scratch/restart-ferro.log" -- \
        "$FERRO" serve --port "$port" --create-stream-ms 0 --shard-limit 100000 --enforce-limits false \
        --max-request-body-mb 64 --log-level warn --state-dir "$scratch/restart-ferro" \
        >/dev/null || echo "FAILED: ferrokinesis restart" >&2
    rm -rf "$scratch/restart-ferro"
fi

if [[ "${REPORT:-on}" == on ]]; then
    say "write BENCHMARKS.md"
    python3 bench/report.py "$results" BENCHMARKS.md
fi
echo "results: $results" >&2

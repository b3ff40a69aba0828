#!/usr/bin/env bash
# Encrypted versus unencrypted streams on one Millrace server, in one run:
# PutRecords (500 x 1 KiB) and a GetRecords drain, each against a fresh stream, alternating
# unencrypted and encrypted (alias/aws/kinesis) ROUNDS times. Prints one JSON line per run.
#   bench/encryption.sh                      # DURATION=10 RECORDS=200000 ROUNDS=2
# Uses target/release/millrace and target/release/millrace-bench (build them first).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo_root/target}/release"
duration="${DURATION:-10}" records="${RECORDS:-200000}" rounds="${ROUNDS:-2}"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/millrace-enc-bench.XXXXXX")"
openssl rand -base64 32 >"$scratch/master.key"
MILLRACE_THROUGHPUT_LIMITS=off "$target/millrace" serve --listen 127.0.0.1:0 --data-dir "$scratch/data" \
    --fsync "${FSYNC:-always}" --shard-limit 100000 --master-key-file "$scratch/master.key" \
    >"$scratch/stdout" 2>"$scratch/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$scratch"' EXIT
for _ in $(seq 100); do grep -q listening "$scratch/stdout" 2>/dev/null && break; sleep 0.1; done
endpoint="$(sed -n 's/^listening on //p' "$scratch/stdout")"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
for round in $(seq "$rounds"); do
    for mode in plain kms; do
        extra=()
        [[ $mode == kms ]] && extra=(--encrypt-key alias/aws/kinesis)
        "$target/millrace-bench" put --endpoint "$endpoint" --server-pid "$pid" --label "put-$mode-$round" \
            --batch 500 --record-size 1024 --connections 8 --shards 4 --duration "$duration" "${extra[@]}" 2>/dev/null
        "$target/millrace-bench" get --endpoint "$endpoint" --server-pid "$pid" --label "get-$mode-$round" \
            --records "$records" --record-size 1024 --shards 4 "${extra[@]}" 2>/dev/null
    done
done

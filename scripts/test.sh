#!/usr/bin/env bash
# The whole test suite in one command:
#   1. test dependencies (scripts/setup-test-deps.sh: .venv with boto3/awscli/pytest, compat/node/node_modules)
#   2. cargo build -p millrace-cli            (the binary the compat suites run)
#      then the hygiene gates: cargo fmt --check, cargo clippy -D warnings, xtask codegen --check
#   3. cargo nextest run --workspace          (falls back to cargo test --workspace without nextest)
#   4. .venv/bin/pytest -q compat/python      (boto3, AWS CLI, raw HTTP, crash, retention)
#   5. bash bench/smoke.sh                    (2-second smoke of every benchmark workload, no timing checks)
#   6. node --test in compat/node             (AWS SDK for JavaScript v3)
#   7. go test in compat/go                   (AWS SDK for Go v2; modules from the Go module proxy)
#   8. mvn test in compat/java                (AWS SDK for Java v2, CBOR and HTTP/2; jars from Maven Central)
# Every test section runs even if an earlier one failed; the script exits non-zero if any failed.
# Extra arguments are passed to pytest (e.g. scripts/test.sh -k bad_input).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# No incremental caches in a full run: they roughly double the target directory and a clean
# checkout gains nothing from them. A developer may export CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

export MILLRACE_BIN="${MILLRACE_BIN:-${CARGO_TARGET_DIR:-$repo_root/target}/debug/millrace}"

declare -a summary=()
failed=0

section() {
    printf '\n=== %s ===\n' "$1"
}

# run_section NAME LOGFILE SUMMARY_REGEX COMMAND...: runs the command with its output shown and
# saved, then records the last line matching SUMMARY_REGEX (the runner's own closing line).
run_section() {
    local name="$1" log="$2" pattern="$3"
    shift 3
    section "$name"
    local start=$SECONDS rc=0
    "$@" 2>&1 | tee "$log" || rc=$?
    local took=$((SECONDS - start))
    local line
    line="$(grep -E "$pattern" "$log" | tail -n 1 || true)"
    if [[ $rc -eq 0 ]]; then
        summary+=("PASS  $name (${took}s)${line:+: $line}")
    else
        summary+=("FAIL  $name (${took}s, exit $rc)${line:+: $line}")
        failed=1
    fi
}

logs="$repo_root/target/test-logs"
mkdir -p "$logs"

section "disk"
# Printed so that a run that fails for want of space says so at the top.
df -h "$repo_root" "${TMPDIR:-/tmp}" || true

section "test dependencies"
bash scripts/setup-test-deps.sh

section "cargo build -p millrace-cli"
build_start=$SECONDS
cargo build -p millrace-cli
summary+=("PASS  cargo build -p millrace-cli ($((SECONDS - build_start))s)")

run_section "cargo fmt --check" "$logs/fmt.log" '.' cargo fmt --all --check
run_section "cargo clippy" "$logs/clippy.log" '^(error|warning)' \
    cargo clippy --workspace --all-targets -- -D warnings
if [[ -f "$repo_root/../shared/aws-models/kinesis/service-2.json" ]]; then
    run_section "xtask codegen --check" "$logs/codegen.log" '.' cargo xtask codegen --check
fi

if cargo nextest --version >/dev/null 2>&1; then
    run_section "cargo nextest run --workspace" "$logs/rust.log" '^ *Summary \[' \
        cargo nextest run --workspace --no-fail-fast --no-tests=warn
else
    run_section "cargo test --workspace" "$logs/rust.log" '^test result:' \
        cargo test --workspace --no-fail-fast
fi

run_section "pytest compat/python" "$logs/python.log" '(passed|failed|error|no tests ran)' \
    "$repo_root/.venv/bin/pytest" -q compat/python "$@"

# NODE_NO_WARNINGS hides the SDK's notice about future Node versions.
run_section "bench smoke (bench/smoke.sh)" "$logs/bench.log" '[0-9]+ passed, [0-9]+ failed' \
    bash bench/smoke.sh

run_section "node --test compat/node" "$logs/node.log" '^(# |ℹ )(tests|pass|fail) ' \
    env NODE_NO_WARNINGS=1 bash -c 'cd compat/node && node --test'

run_section "go test compat/go" "$logs/go.log" '^(ok|FAIL|---)' \
    bash -c 'cd compat/go && go test -count=1 ./...'

run_section "mvn test compat/java" "$logs/java.log" '(Tests run:|BUILD|ERROR)' \
    bash -c 'cd compat/java && mvn -B -q test && grep -h "Tests run" target/surefire-reports/*.txt'

printf '\n=== summary ===\n'
for line in "${summary[@]}"; do
    printf '%s\n' "$line"
done
if grep -qE '^(# |ℹ )(pass|fail) ' "$logs/node.log" 2>/dev/null; then
    printf 'node: %s\n' "$(grep -E '^(# |ℹ )(pass|fail) ' "$logs/node.log" | sed -E 's/^(# |ℹ )//' | tr '\n' ' ')"
fi
printf 'logs: %s\n' "$logs"
df -h "$repo_root" "${TMPDIR:-/tmp}" | tail -n +2 | sed 's/^/disk: /' || true
exit "$failed"

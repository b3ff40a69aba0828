#!/usr/bin/env bash
# Installs the dependencies of the compat test suites into project-local folders:
#   - .venv            (python3 -m venv; boto3, awscli, pytest from compat/python/requirements.txt)
#   - .venv/kclpy      (amazon_kclpy's Python sources, for the KCL daemon tests)
#   - compat/node/node_modules    (npm ci from compat/node/package-lock.json; @aws-sdk/client-kinesis)
#   - chromium and chromium-driver (apt, as root, when missing) for the web console's browser test
# Idempotent and quiet: each part is skipped when a stamp file records the hash of the inputs it was
# installed from. Set MILLRACE_FORCE_SETUP=1 to reinstall regardless.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv"
requirements="$repo_root/compat/python/requirements.txt"
node_dir="$repo_root/compat/node"
python="${PYTHON:-python3}"

log() { printf 'setup-test-deps: %s\n' "$*"; }

hash_of() {
    # Hash of the given files' contents plus an extra string (tool versions).
    local extra="$1"
    shift
    { cat "$@"; printf '%s' "$extra"; } | sha256sum | cut -d' ' -f1
}

# --- Python ---------------------------------------------------------------------------------------
py_version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
py_hash="$(hash_of "python $py_version" "$requirements")"
py_stamp="$venv/.millrace-deps-stamp"

if [[ "${MILLRACE_FORCE_SETUP:-0}" != "1" && -f "$py_stamp" && "$(cat "$py_stamp")" == "$py_hash" \
      && -x "$venv/bin/pytest" && -x "$venv/bin/aws" ]]; then
    log "python venv up to date ($venv)"
else
    log "installing python test dependencies into $venv"
    if [[ ! -x "$venv/bin/python" ]]; then
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    printf '%s\n' "$py_hash" >"$py_stamp"
    log "python done: $("$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
        | awk '$1 ~ /^(boto3|botocore|awscli|pytest)$/ {printf "%s %s  ", $1, $2}')"
fi

# --- Browser (the web console's Selenium tests) ------------------------------------------------------
# Headless Chromium and its driver from Debian; the rest of the suite does not need them.
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    log "chromium and chromedriver present"
elif command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == "0" ]]; then
    log "installing chromium and chromium-driver (apt)"
    if ! { apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
           || { apt-get update -qq >/dev/null 2>&1 \
                && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; }; }; then
        log "could not install chromium: the console browser test will fail" >&2
    fi
else
    log "chromium or chromedriver missing and apt-get is not usable: the console browser test will fail" >&2
fi

# --- amazon_kclpy (the KCL daemon tests run its unmodified sample processor) ------------------------
# Its install step downloads the Java daemon's jars, which `millrace kcl` does not need, so only the
# pure-Python sources are fetched (the PyPI sdist) and unpacked; the tests put them on PYTHONPATH.
kclpy_version="3.2.0"
kclpy_dir="$venv/kclpy/amazon_kclpy-$kclpy_version"
if [[ -f "$kclpy_dir/amazon_kclpy/kcl.py" ]]; then
    log "amazon_kclpy $kclpy_version present ($kclpy_dir)"
else
    log "fetching amazon_kclpy $kclpy_version sources into $venv/kclpy"
    kclpy_tmp="$(mktemp -d)"
    if "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
            "amazon_kclpy==$kclpy_version" -d "$kclpy_tmp"; then
        mkdir -p "$venv/kclpy"
        tar xzf "$kclpy_tmp/amazon_kclpy-$kclpy_version.tar.gz" -C "$venv/kclpy"
    else
        log "could not fetch amazon_kclpy; the KCL daemon tests will fail" >&2
    fi
    rm -rf "$kclpy_tmp"
fi

# --- Node -----------------------------------------------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
    log "npm not found: cannot install compat/node dependencies" >&2
    exit 1
fi
node_hash="$(hash_of "node $(node --version)" "$node_dir/package.json" "$node_dir/package-lock.json")"
node_stamp="$node_dir/node_modules/.millrace-deps-stamp"

if [[ "${MILLRACE_FORCE_SETUP:-0}" != "1" && -f "$node_stamp" && "$(cat "$node_stamp")" == "$node_hash" ]]; then
    log "node modules up to date ($node_dir/node_modules)"
else
    log "installing node test dependencies into $node_dir/node_modules"
    (
        cd "$node_dir"
        # npm ci installs exactly the lock file; it prints a harmless warning about the
        # machine's npmrc, hence the filtering.
        npm ci --no-audit --no-fund --loglevel=error 2>&1 | { grep -v -e 'Unknown user config' -e '^$' || true; }
    )
    # npm ci wipes node_modules first, so write the stamp afterwards.
    printf '%s\n' "$node_hash" >"$node_stamp"
    log "node done"
fi

# --- Go ---------------------------------------------------------------------------------------------
if command -v go >/dev/null 2>&1; then
    (cd "$repo_root/compat/go" && go mod download) && log "go modules ready (compat/go)"
else
    log "go not found: cannot run compat/go" >&2
    exit 1
fi

# --- Java -------------------------------------------------------------------------------------------
if command -v mvn >/dev/null 2>&1; then
    (cd "$repo_root/compat/java" && mvn -B -q dependency:go-offline) && log "maven dependencies ready (compat/java)"
else
    log "mvn not found: cannot run compat/java" >&2
    exit 1
fi

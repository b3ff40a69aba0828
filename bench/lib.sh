# Shared helpers for bench/compare.sh and bench/smoke.sh: start a server in the background, remember its pid,
# wait until it accepts connections, and stop every server this shell started.
# Sourced, not run.

declare -a BENCH_PIDS=()

# free_port: prints a loopback TCP port that was free a moment ago.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_port PORT SECONDS: succeeds once something accepts connections on 127.0.0.1:PORT.
wait_for_port() {
    local port="$1" seconds="$2" i
    for ((i = 0; i < seconds * 20; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# start_listening_server LOGPREFIX COMMAND...: starts a server that prints `listening on http://ADDR` on stdout
# (Millrace and the ceiling server); sets SERVER_PID and SERVER_URL.
start_listening_server() {
    local prefix="$1"
    shift
    "$@" >"$prefix.stdout" 2>"$prefix.stderr" &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    local i line=""
    for ((i = 0; i < 600; i++)); do
        line="$(grep -m1 '^listening on http://' "$prefix.stdout" 2>/dev/null || true)"
        [[ -n "$line" ]] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited before listening; its stderr:" >&2
            tail -n 20 "$prefix.stderr" >&2
            return 1
        fi
        sleep 0.05
    done
    [[ -n "$line" ]] || { echo "server did not print its address within 30 s" >&2; return 1; }
    SERVER_URL="${line#listening on }"
}

# start_port_server LOGPREFIX PORT COMMAND...: starts a server on a known port (the peers); sets SERVER_PID and
# SERVER_URL. The command must exec the server itself so that $! is the server's pid.
start_port_server() {
    local prefix="$1" port="$2"
    shift 2
    "$@" >"$prefix.stdout" 2>"$prefix.stderr" &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    if ! wait_for_port "$port" 30; then
        echo "server did not listen on port $port within 30 s; its stderr:" >&2
        tail -n 20 "$prefix.stderr" >&2
        return 1
    fi
    SERVER_URL="http://127.0.0.1:$port"
}

# stop_server PID: SIGTERM, then SIGKILL after 5 s; only pids this shell started.
stop_server() {
    local pid="$1" i kept=()
    for i in "${BENCH_PIDS[@]}"; do
        [[ "$i" == "$pid" ]] || kept+=("$i")
    done
    BENCH_PIDS=("${kept[@]}")
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_all_servers() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        stop_server "$pid"
    done
}

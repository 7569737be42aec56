#!/usr/bin/env bash
# Ledger benchmark: builds release binaries, then for one backend starts the server twice (default
# group-commit batching, then POINTS_LEDGER_BATCH_MAX=1) on a fresh database and runs:
#   trivial      GET /healthz baseline (first configuration only)
#   ledger       closed-loop grants
#   ledger-rate  open-loop grants at half the req/s that `ledger` just measured
# and prints every row as one markdown table.
#
# Usage:
#   loadtest/run-ledger.sh sqlite
#   DATABASE_URL=postgres://points:points@127.0.0.1/points_bench loadtest/run-ledger.sh postgres
#
# Environment:
#   REQUESTS        closed-loop request budget                (default 20000)
#   DURATION        closed-loop time budget, seconds          (default 20)
#   RATE_DURATION   ledger-rate duration, seconds             (default 10)
#   CONCURRENCY     closed-loop workers                       (default 64)
#   SKIP_BUILD=1    use the binaries already in the target directory
#   CARGO_TARGET_DIR  honoured when locating the binaries
#
# The Postgres database named by DATABASE_URL is wiped (DROP SCHEMA public CASCADE) before each
# server start: point it at a database that exists only for benchmarks.
set -euo pipefail

BIND=127.0.0.1:18080
BASE_URL="http://$BIND"
ADMIN_KEY=bench-key
READY_TIMEOUT_SECS=60
STOP_TIMEOUT_SECS=30
REQUESTS=${REQUESTS:-20000}
DURATION=${DURATION:-20}
RATE_DURATION=${RATE_DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}

usage() {
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

backend=${1:-}
case "$backend" in
    sqlite) ;;
    postgres)
        if [[ -z "${DATABASE_URL:-}" ]]; then
            echo "run-ledger.sh: postgres needs DATABASE_URL, e.g. postgres://points:points@127.0.0.1/points_bench" >&2
            exit 2
        fi
        command -v psql >/dev/null || { echo "run-ledger.sh: psql not found" >&2; exit 2; }
        ;;
    -h | --help) usage ;;
    *) echo "run-ledger.sh: backend must be sqlite or postgres" >&2; usage ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
SERVER_BIN=$TARGET_DIR/release/points-engine
LOADTEST_BIN=$TARGET_DIR/release/points-loadtest

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p points-engine -p points-loadtest
fi
for bin in "$SERVER_BIN" "$LOADTEST_BIN"; do
    [[ -x "$bin" ]] || { echo "run-ledger.sh: $bin not found" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/points-bench.XXXXXX")
SERVER_PID=

# SIGTERM lets the server drain and commit; SIGKILL only if it has not exited after the grace period.
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local deadline=$((SECONDS + STOP_TIMEOUT_SECS))
        while kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "run-ledger.sh: server did not exit ${STOP_TIMEOUT_SECS}s after SIGTERM; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ready() {
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE_URL/readyz" 2>/dev/null)" == 200 ]]
}

# start_server CONFIG_NAME [VAR=VALUE ...]: fresh database, server in the background, wait for ready.
start_server() {
    local name=$1
    shift
    if ready; then
        echo "run-ledger.sh: something already answers on $BASE_URL; stop it first" >&2
        exit 1
    fi

    local database_url
    if [[ "$backend" == postgres ]]; then
        psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 \
            -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
        database_url=$DATABASE_URL
    else
        rm -f "$TMP"/bench.db "$TMP"/bench.db-wal "$TMP"/bench.db-shm
        database_url="sqlite://$TMP/bench.db"
    fi

    local log="$TMP/server-$name.log"
    env POINTS_BIND="$BIND" POINTS_ADMIN_KEY="$ADMIN_KEY" DATABASE_URL="$database_url" \
        POINTS_RATE_LIMITS=off RUST_LOG=warn "$@" "$SERVER_BIN" serve >"$log" 2>&1 &
    SERVER_PID=$!

    local deadline=$((SECONDS + READY_TIMEOUT_SECS))
    until ready; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "run-ledger.sh: server ($name) exited during startup; log:" >&2
            tail -n 40 "$log" >&2
            SERVER_PID=
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "run-ledger.sh: server ($name) not ready after ${READY_TIMEOUT_SECS}s; log:" >&2
            tail -n 40 "$log" >&2
            exit 1
        fi
        sleep 0.2
    done
}

ROWS=()

# loadtest SCENARIO LABEL [ARGS...]: runs one scenario, keeps its row, leaves its JSON in $TMP/last.json.
loadtest() {
    local scenario=$1 label=$2
    shift 2
    rm -f "$TMP/last.json"
    local row status=0
    row=$("$LOADTEST_BIN" "$scenario" --url "$BASE_URL" --admin-key "$ADMIN_KEY" \
        --label "$label" --no-header --json-out "$TMP/last.json" "$@") || status=$?
    if [[ -n "$row" ]]; then
        ROWS+=("$row")
        echo "$row" >&2
    fi
    return "$status"
}

# Reads req_per_s from the JSON line of the last run.
last_req_per_s() {
    if command -v python3 >/dev/null; then
        python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["req_per_s"])' \
            "$TMP/last.json"
    else
        # The line is compact serde_json output, so the number follows the key directly.
        sed -n 's/.*"req_per_s":\([0-9.eE+-]*\).*/\1/p' "$TMP/last.json"
    fi
}

run_configuration() {
    local name=$1 with_trivial=$2
    shift 2
    local label="$backend $name"
    echo "== $label" >&2
    start_server "$name" "$@"

    if [[ "$with_trivial" == 1 ]]; then
        loadtest trivial "$label" --requests "$REQUESTS" --duration "$DURATION" \
            --concurrency "$CONCURRENCY" || echo "run-ledger.sh: trivial had no successes" >&2
    fi
    if ! loadtest ledger "$label" --requests "$REQUESTS" --duration "$DURATION" \
        --concurrency "$CONCURRENCY"; then
        echo "run-ledger.sh: ledger had no successes; skipping ledger-rate for $label" >&2
    else
        local rate
        rate=$(last_req_per_s | awk '{ printf "%.1f", $1 / 2 }')
        if awk -v r="$rate" 'BEGIN { exit !(r > 0) }'; then
            loadtest ledger-rate "$label rate=$rate" --rate "$rate" --duration "$RATE_DURATION" ||
                echo "run-ledger.sh: ledger-rate had no successes" >&2
        fi
    fi
    stop_server
}

run_configuration default 1
run_configuration batch-max-1 0 POINTS_LEDGER_BATCH_MAX=1

echo
echo "backend=$backend requests=$REQUESTS duration=${DURATION}s rate-duration=${RATE_DURATION}s" \
    "concurrency=$CONCURRENCY cpus=$(nproc) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
echo '| label | scenario | requests ok | errors | seconds | req/s | p50 ms | p99 ms | max ms |'
echo '|---|---|---:|---:|---:|---:|---:|---:|---:|'
printf '%s\n' "${ROWS[@]}"

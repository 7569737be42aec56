#!/usr/bin/env bash
# Scale benchmark on Postgres: the same workload against a fresh database and against one seeded
# with a year of a busy app (loadtest/sql/seed-scale.sql: SEED_USERS users, SEED_ENTRIES entries
# and as many credit lots), one after the other in one run, with one release server each:
#   trivial   GET /healthz baseline of that server
#   redpack   grabs answered after their commit (USERS dev-login users x CARDS cards); the rows
#             Postgres read by sequential scans during it are counted and divided by the grabs
#   ledger    closed-loop grants
#   ledger-rate  open-loop grants at half the rate `ledger` measured (p99 of acknowledgement)
# and prints one table with every row, the grab ratios and the seq-scan rows per grab.
#
# Usage:
#   DATABASE_URL=postgres://points:points@127.0.0.1/points loadtest/run-scale.sh
#
# Environment:
#   SEED_USERS      seeded users                              (default 1000000)
#   SEED_ENTRIES    seeded ledger entries                     (default 10000000)
#   USERS           grabbing users                            (default 20000)
#   CARDS           cards each user grabs once                (default 10)
#   DURATION        time budget of each closed loop, seconds  (default 15)
#   CONCURRENCY     closed-loop workers                       (default 64)
#   SKIP_BUILD=1    use the binaries already in the target directory
#
# DATABASE_URL names a server and a role that may create databases; the run creates (and at the
# end drops) points_scale_fresh and points_scale_seeded on it.
set -euo pipefail

BIND=127.0.0.1:18082
BASE_URL="http://$BIND"
ADMIN_KEY=bench-key
READY_TIMEOUT_SECS=60
SEED_USERS=${SEED_USERS:-1000000}
SEED_ENTRIES=${SEED_ENTRIES:-10000000}
USERS=${USERS:-20000}
CARDS=${CARDS:-10}
DURATION=${DURATION:-15}
CONCURRENCY=${CONCURRENCY:-64}

[[ -n "${DATABASE_URL:-}" ]] || { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p points-engine -p points-loadtest
fi
SERVER_BIN=$TARGET_DIR/release/points-engine
LOADTEST_BIN=$TARGET_DIR/release/points-loadtest

TMP=$(mktemp -d "${TMPDIR:-/tmp}/points-scale.XXXXXX")
SERVER_PID=
DATABASES=(points_scale_fresh points_scale_seeded)
db_url() { python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$DATABASE_URL" "$1"; }
psql_q() { PGOPTIONS='-c client_min_messages=warning' psql "$@" -q -v ON_ERROR_STOP=1; }
stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
cleanup() {
    stop_server
    for name in "${DATABASES[@]}"; do psql_q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $name" || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() {
    env POINTS_BIND="$BIND" POINTS_ADMIN_KEY="$ADMIN_KEY" DATABASE_URL="$1" POINTS_DEV_LOGIN=1 \
        POINTS_RATE_LIMITS=off RUST_LOG=error "$SERVER_BIN" serve >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + READY_TIMEOUT_SECS))
    until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE_URL/readyz")" == 200 ]]; do
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 40 "$TMP/server.log" >&2; exit 1; }
        ((SECONDS < deadline)) || { echo "run-scale.sh: server not ready" >&2; exit 1; }
        sleep 0.2
    done
}
run() {
    local label=$1 scenario=$2
    shift 2
    "$LOADTEST_BIN" "$scenario" --url "$BASE_URL" --admin-key "$ADMIN_KEY" --label "$label" \
        --no-header --json-out "$TMP/$label-$scenario.json" --concurrency "$CONCURRENCY" "$@"
}
field() {
    python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])[sys.argv[2]])' "$1" "$2"
}
seq_rows() {
    psql "$1" -tAc "SELECT COALESCE(SUM(seq_tup_read), 0) FROM pg_stat_user_tables"
}

ROWS=()
SUMMARY=()
for name in "${DATABASES[@]}"; do
    url=$(db_url "$name")
    psql_q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
    start_server "$url"
    label=fresh
    if [[ "$name" == points_scale_seeded ]]; then
        label="seeded $SEED_USERS users, $SEED_ENTRIES entries"
        echo "== seeding $name ($SEED_USERS users, $SEED_ENTRIES entries)" >&2
        started=$SECONDS
        psql_q "$url" -v users="$SEED_USERS" -v entries="$SEED_ENTRIES" -f loadtest/sql/seed-scale.sql >"$TMP/seed.log"
        echo "   seeded in $((SECONDS - started)) s" >&2
        # The server's leaderboards were built before the seed; start it again so it starts as a
        # server of a big app would.
        stop_server
        start_server "$url"
    fi
    echo "== $label: trivial, redpack, ledger, ledger-rate" >&2
    ROWS+=("$(run "$label" trivial --requests 10000000 --duration "$DURATION")")
    # Stats reach pg_stat_user_tables when a backend goes idle (at most 10 s later).
    sleep 11
    before=$(seq_rows "$url")
    ROWS+=("$(run "$label" redpack --users "$USERS" --cards "$CARDS" --requests $((USERS * CARDS)) --duration "$DURATION")")
    sleep 11
    after=$(seq_rows "$url")
    grabs=$(field "$TMP/$label-redpack.json" ok)
    ROWS+=("$(run "$label" ledger --requests 200000 --duration "$DURATION")")
    half=$(awk -v r="$(field "$TMP/$label-ledger.json" req_per_s)" 'BEGIN { printf "%.1f", r / 2 }')
    ROWS+=("$(run "$label" ledger-rate --rate "$half" --duration 10)")
    ratio=$(awk -v a="$(field "$TMP/$label-redpack.json" req_per_s)" -v b="$(field "$TMP/$label-trivial.json" req_per_s)" 'BEGIN { printf "%.3f", a / b }')
    per_grab=$(awk -v d="$((after - before))" -v g="$grabs" 'BEGIN { printf "%.2f", d / g }')
    SUMMARY+=("$label: redpack / trivial ${ratio}x; rows read by sequential scans during the grabs: $((after - before)) ($per_grab per grab); ledger-rate at $half/s")
    stop_server
done

echo
echo "postgres users=$USERS cards=$CARDS concurrency=$CONCURRENCY duration=${DURATION}s cpus=$(nproc) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
echo '| label | scenario | requests ok | errors | seconds | req/s | p50 ms | p99 ms | max ms |'
echo '|---|---|---:|---:|---:|---:|---:|---:|---:|'
printf '%s\n' "${ROWS[@]}"
echo
printf -- '- %s\n' "${SUMMARY[@]}"

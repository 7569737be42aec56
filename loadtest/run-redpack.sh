#!/usr/bin/env bash
# Red-packet benchmarks, each side by side in one run:
#   1. HTTP storm: on one release server and a fresh database, `trivial` (GET /healthz) and then
#      `redpack` (grabs answered after their commit) with the same concurrency; prints both rows
#      and the ratio. The redpack scenario checks the server's granted count against the grabs it
#      acknowledged (over-grab must be 0).
#   2. Websocket fan-out: `ws-fanout` connects SUBSCRIBERS websockets (leaderboard:points and
#      redpack:radio), measures the time from a score change to its delivery to every subscriber,
#      then holds the connections while the same `redpack` run repeats on new cards; prints the
#      grab rate with subscribers against the rate without them.
#   3. In process: `card-actor-bench` (the card actor's grab rate, ledger in memory) against the
#      same grab as a Redis Lua script driven by `redis-benchmark` on this machine; prints the ratio.
#
# Usage:
#   loadtest/run-redpack.sh sqlite
#   DATABASE_URL=postgres://points:points@127.0.0.1/points_bench loadtest/run-redpack.sh postgres
#
# Environment:
#   USERS           grabbing users                            (default 2000)
#   CARDS           cards each user grabs once                (default 10)
#   DURATION        time budget of each closed loop, seconds  (default 15)
#   CONCURRENCY     closed-loop workers                       (default 64)
#   SUBSCRIBERS     websocket subscribers                     (default 10000; 0 skips part 2)
#   GRABS           card-actor-bench and redis-benchmark grabs (default 1000000 / 300000)
#   REDIS_PORT      port of a private redis-server started for part 2 (default 16399)
#   SKIP_BUILD=1    use the binaries already in the target directory
#
# The Postgres database named by DATABASE_URL is wiped (DROP SCHEMA public CASCADE) first:
# point it at a database that exists only for benchmarks.
set -euo pipefail

BIND=127.0.0.1:18081
BASE_URL="http://$BIND"
ADMIN_KEY=bench-key
READY_TIMEOUT_SECS=60
USERS=${USERS:-2000}
CARDS=${CARDS:-10}
DURATION=${DURATION:-15}
CONCURRENCY=${CONCURRENCY:-64}
GRABS=${GRABS:-1000000}
REDIS_GRABS=${REDIS_GRABS:-300000}
REDIS_PORT=${REDIS_PORT:-16399}
SUBSCRIBERS=${SUBSCRIBERS:-10000}

backend=${1:-}
case "$backend" in
    sqlite) ;;
    postgres)
        [[ -n "${DATABASE_URL:-}" ]] || { echo "run-redpack.sh: postgres needs DATABASE_URL" >&2; exit 2; }
        ;;
    *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p points-engine -p points-loadtest
fi
SERVER_BIN=$TARGET_DIR/release/points-engine
LOADTEST_BIN=$TARGET_DIR/release/points-loadtest
ACTOR_BIN=$TARGET_DIR/release/card-actor-bench
FANOUT_BIN=$TARGET_DIR/release/ws-fanout

TMP=$(mktemp -d "${TMPDIR:-/tmp}/points-redpack.XXXXXX")
SERVER_PID=
REDIS_PID=
cleanup() {
    [[ -n "$SERVER_PID" ]] && { kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
    [[ -n "$REDIS_PID" ]] && { kill -TERM "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; }
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "$backend" == postgres ]]; then
    PGOPTIONS='-c client_min_messages=warning' psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 \
        -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
    database_url=$DATABASE_URL
else
    database_url="sqlite://$TMP/bench.db"
fi
env POINTS_BIND="$BIND" POINTS_ADMIN_KEY="$ADMIN_KEY" DATABASE_URL="$database_url" POINTS_DEV_LOGIN=1 \
    POINTS_RATE_LIMITS=off RUST_LOG=error "$SERVER_BIN" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
deadline=$((SECONDS + READY_TIMEOUT_SECS))
until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE_URL/readyz")" == 200 ]]; do
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 40 "$TMP/server.log" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "run-redpack.sh: server not ready" >&2; exit 1; }
    sleep 0.2
done

run() {
    local scenario=$1
    shift
    "$LOADTEST_BIN" "$scenario" --url "$BASE_URL" --admin-key "$ADMIN_KEY" --label "$backend" \
        --no-header --json-out "$TMP/$scenario.json" --concurrency "$CONCURRENCY" --duration "$DURATION" "$@"
}
req_per_s() {
    python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["req_per_s"])' "$1"
}

echo "== HTTP: trivial, then red-packet grabs ($USERS users x $CARDS cards)" >&2
TRIVIAL_ROW=$(run trivial --requests 10000000)
REDPACK_ROW=$(run redpack --users "$USERS" --cards "$CARDS" --requests $((USERS * CARDS)))
HTTP_RATIO=$(awk -v a="$(req_per_s "$TMP/redpack.json")" -v b="$(req_per_s "$TMP/trivial.json")" 'BEGIN { printf "%.2f", a / b }')
FANOUT_LINES=
WITH_SUBS_ROW=
SUBS_RATIO=
if ((SUBSCRIBERS > 0)); then
    echo "== websocket: $SUBSCRIBERS subscribers, then the grabs again with them connected" >&2
    mv "$TMP/redpack.json" "$TMP/redpack-alone.json"
    "$FANOUT_BIN" --url "$BASE_URL" --admin-key "$ADMIN_KEY" --subscribers "$SUBSCRIBERS" \
        --changes 20 --interval-ms 500 --hold-secs $((DURATION + 60)) --ready-file "$TMP/fanout.ready" \
        >"$TMP/fanout.out" 2>"$TMP/fanout.err" &
    FANOUT_PID=$!
    until [[ -f "$TMP/fanout.ready" ]]; do
        kill -0 "$FANOUT_PID" 2>/dev/null || { cat "$TMP/fanout.err" >&2; exit 1; }
        sleep 0.5
    done
    WITH_SUBS_ROW=$(run redpack --users "$USERS" --cards "$CARDS" --requests $((USERS * CARDS)) --label "$backend, $SUBSCRIBERS ws subscribers")
    SUBS_RATIO=$(awk -v a="$(req_per_s "$TMP/redpack.json")" -v b="$(req_per_s "$TMP/redpack-alone.json")" 'BEGIN { printf "%.2f", a / b }')
    kill -TERM "$FANOUT_PID" 2>/dev/null || true
    wait "$FANOUT_PID" 2>/dev/null || true
    FANOUT_LINES=$(cat "$TMP/fanout.out")
fi
kill -TERM "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

echo "== in process: card actor, then redis-benchmark with the same grab as Lua" >&2
ACTOR_LINE=$("$ACTOR_BIN" --grabs "$GRABS" --concurrency 256)
ACTOR_RATE=$(echo "$ACTOR_LINE" | sed -n 's/.* \([0-9]*\) grabs\/s/\1/p')
REDIS_LINE="redis-server or redis-benchmark not installed"
REDIS_RATE=
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
    SCRIPT="if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return -1 end
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then return 0 end
redis.call('DECR', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1"
    SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$SCRIPT")
    redis-cli -p "$REDIS_PORT" SET card:stock 1000000000 >/dev/null
    for pipeline in 1 16; do
        rate=$(redis-benchmark -p "$REDIS_PORT" -n "$REDIS_GRABS" -c 50 -P "$pipeline" -r 100000000 --csv \
            EVALSHA "$SHA" 2 card:stock card:grabbed __rand_int__ | tail -n 1 | cut -d, -f2 | tr -d '"')
        REDIS_LINE="$REDIS_LINE; pipeline $pipeline: $rate grabs/s"
        [[ "$pipeline" == 1 ]] && REDIS_RATE=$rate
    done
    REDIS_LINE="redis Lua (50 clients, $REDIS_GRABS grabs)${REDIS_LINE#redis-server or redis-benchmark not installed}"
fi

echo
echo "backend=$backend users=$USERS cards=$CARDS concurrency=$CONCURRENCY duration=${DURATION}s cpus=$(nproc) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
echo '| label | scenario | requests ok | errors | seconds | req/s | p50 ms | p99 ms | max ms |'
echo '|---|---|---:|---:|---:|---:|---:|---:|---:|'
echo "$TRIVIAL_ROW"
echo "$REDPACK_ROW"
[[ -n "$WITH_SUBS_ROW" ]] && echo "$WITH_SUBS_ROW"
echo
echo "redpack / trivial: ${HTTP_RATIO}x (target >= 0.25x)"
if [[ -n "$SUBS_RATIO" ]]; then
    echo "websocket fan-out (score change to delivery):"
    echo "$FANOUT_LINES" | head -n 1
    echo "redpack with $SUBSCRIBERS subscribers / without: ${SUBS_RATIO}x (target >= 0.8x)"
fi
echo "$ACTOR_LINE"
echo "$REDIS_LINE"
if [[ -n "$REDIS_RATE" ]]; then
    awk -v a="$ACTOR_RATE" -v b="$REDIS_RATE" 'BEGIN { printf "card actor / redis Lua (no pipelining): %.2fx (target >= 3x)\n", a / b }'
fi

#!/usr/bin/env bash
# Several nodes on this machine, over one Postgres and a private Redis:
#   1. one node in cluster mode: `trivial` and `redpack` (grabs answered after their commit)
#   2. three nodes on a fresh database: the same `redpack` run, requests round-robin over them
#      (a node that does not own a card relays the grab to its owner)
#   3. websocket latency on the three nodes: from a change sent to a node to the points board's
#      frame on subscribers of the node that publishes the board (its lease's owner) and of
#      another node (the frame crosses Redis either way; a change committed on a node that does
#      not publish the board reaches the publisher through the Redis stream first)
#   4. loadtest/cluster_faults.py: KILLS rounds of SIGKILL of a card's owner (takeover time
#      p50 / max against the lease TTL), then a SIGSTOP of an owner for three leases during a
#      storm (the changes its commits fenced); no grab lost or doubled in any round.
# Three nodes share this machine's cores with Postgres, Redis and the load generator: read the
# throughput rows as this machine's, not as what three machines would do.
#
# Usage:
#   DATABASE_URL=postgres://points:points@127.0.0.1/points loadtest/run-cluster.sh
#
# Environment:
#   USERS           grabbing users                            (default 20000)
#   CARDS           cards each user grabs once                (default 10)
#   DURATION        time budget of each closed loop, seconds  (default 15)
#   CONCURRENCY     closed-loop workers                       (default 64)
#   KILLS           takeover rounds                           (default 10)
#   WS_SUBSCRIBERS  websocket subscribers per latency row     (default 500)
#   WS_CHANGES      changes per latency row                   (default 40)
#   LEASE_TTL_MS    the nodes' lease                          (default 3000)
#   REDIS_PORT      port of the private redis-server          (default 16398)
#   SKIP_BUILD=1    use the binaries already in the target directory
#
# DATABASE_URL names a server and a role that may create databases; the run creates (and at the
# end drops) points_cluster_one, points_cluster_three and points_cluster_faults on it.
set -euo pipefail

ADMIN_KEY=bench-key
READY_TIMEOUT_SECS=60
USERS=${USERS:-20000}
CARDS=${CARDS:-10}
DURATION=${DURATION:-15}
CONCURRENCY=${CONCURRENCY:-64}
KILLS=${KILLS:-10}
WS_SUBSCRIBERS=${WS_SUBSCRIBERS:-500}
WS_CHANGES=${WS_CHANGES:-40}
LEASE_TTL_MS=${LEASE_TTL_MS:-3000}
REDIS_PORT=${REDIS_PORT:-16398}

[[ -n "${DATABASE_URL:-}" ]] || { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
command -v redis-server >/dev/null || { echo "run-cluster.sh: redis-server not found" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p points-engine -p points-loadtest
fi
SERVER_BIN=$TARGET_DIR/release/points-engine
LOADTEST_BIN=$TARGET_DIR/release/points-loadtest
WS_BIN=$TARGET_DIR/release/ws-fanout

TMP=$(mktemp -d "${TMPDIR:-/tmp}/points-cluster.XXXXXX")
PIDS=()
REDIS_PID=
DATABASES=(points_cluster_one points_cluster_three points_cluster_faults)
db_url() { python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$DATABASE_URL" "$1"; }
psql_q() { PGOPTIONS='-c client_min_messages=warning' psql "$@" -q -v ON_ERROR_STOP=1; }
stop_nodes() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    stop_nodes
    [[ -n "$REDIS_PID" ]] && { kill -TERM "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; }
    for name in "${DATABASES[@]}"; do psql_q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $name" || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# start_node URL INDEX: a node on port 18100+INDEX, in cluster mode.
start_node() {
    local port=$((18100 + $2))
    env POINTS_BIND="127.0.0.1:$port" POINTS_ADMIN_KEY="$ADMIN_KEY" DATABASE_URL="$1" \
        REDIS_URL="$REDIS_URL" POINTS_NODE_ID="node-$2" POINTS_LEASE_TTL_MS="$LEASE_TTL_MS" \
        POINTS_DEV_LOGIN=1 POINTS_RATE_LIMITS=off POINTS_DB_MAX_CONNECTIONS=8 RUST_LOG=error \
        "$SERVER_BIN" serve >"$TMP/node-$2.log" 2>&1 &
    PIDS+=($!)
    local deadline=$((SECONDS + READY_TIMEOUT_SECS))
    until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/readyz")" == 200 ]]; do
        ((SECONDS < deadline)) || { tail -n 40 "$TMP/node-$2.log" >&2; exit 1; }
        sleep 0.2
    done
}
run() {
    local label=$1 scenario=$2
    shift 2
    "$LOADTEST_BIN" "$scenario" --admin-key "$ADMIN_KEY" --label "$label" --no-header \
        --json-out "$TMP/$label-$scenario.json" --concurrency "$CONCURRENCY" "$@"
}
field() {
    python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])[sys.argv[2]])' "$1" "$2"
}
for name in "${DATABASES[@]}"; do
    psql_q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
done

ROWS=()
echo "== one node" >&2
start_node "$(db_url points_cluster_one)" 0
ROWS+=("$(run "one node" trivial --url http://127.0.0.1:18100 --requests 10000000 --duration "$DURATION")")
ROWS+=("$(run "one node" redpack --url http://127.0.0.1:18100 --users "$USERS" --cards "$CARDS" \
    --requests $((USERS * CARDS)) --duration "$DURATION")")
stop_nodes

echo "== three nodes, round-robin" >&2
for i in 0 1 2; do start_node "$(db_url points_cluster_three)" "$i"; done
ROWS+=("$(run "three nodes" redpack --url http://127.0.0.1:18100 --url http://127.0.0.1:18101 \
    --url http://127.0.0.1:18102 --users "$USERS" --cards "$CARDS" --requests $((USERS * CARDS)) \
    --duration "$DURATION")")

echo "== websocket latency, the board's publisher against another node" >&2
node_url() { echo "http://127.0.0.1:$((18100 + $1))"; }
# ws_row SUBSCRIBERS_NODE CHANGES_NODE: one ws-fanout run's row, without its leading '|'.
ws_row() {
    "$WS_BIN" --url "$(node_url "$1")" --change-url "$(node_url "$2")" --admin-key "$ADMIN_KEY" \
        --subscribers "$WS_SUBSCRIBERS" --changes "$WS_CHANGES" --interval-ms 300 | tail -n 1 | cut -c2-
}
# The first changes make one node take the lease of the points board.
"$WS_BIN" --url "$(node_url 0)" --admin-key "$ADMIN_KEY" --subscribers 1 --changes 3 >/dev/null
OWNER=$(curl -s -H "X-Admin-Key: $ADMIN_KEY" "$(node_url 0)/admin/cluster" | python3 -c '
import json, sys
leases = json.load(sys.stdin)["data"]["leases"]
print([l["node_id"] for l in leases if l["activity"] == "leaderboard:points:default"][0])')
O=${OWNER#node-}
X=$(((O + 1) % 3))
WS_ROWS=()
WS_ROWS+=("| on the publisher (node-$O) | node-$O |$(ws_row "$O" "$O")")
WS_ROWS+=("| on another node (node-$X) | node-$O |$(ws_row "$X" "$O")")
WS_ROWS+=("| on another node (node-$X) | node-$X |$(ws_row "$X" "$X")")
stop_nodes

echo "== faults: $KILLS owner kills, one owner paused" >&2
FAULTS=$(KILLS="$KILLS" LEASE_TTL_MS="$LEASE_TTL_MS" python3 loadtest/cluster_faults.py \
    "$(db_url points_cluster_faults)" "$REDIS_URL" "$SERVER_BIN")

one=$(field "$TMP/one node-redpack.json" req_per_s)
three=$(field "$TMP/three nodes-redpack.json" req_per_s)
echo
echo "cluster users=$USERS cards=$CARDS concurrency=$CONCURRENCY duration=${DURATION}s lease=${LEASE_TTL_MS}ms cpus=$(nproc) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
echo '| label | scenario | requests ok | errors | seconds | req/s | p50 ms | p99 ms | max ms |'
echo '|---|---|---:|---:|---:|---:|---:|---:|---:|'
printf '%s\n' "${ROWS[@]}"
echo
echo
echo '| subscribers on | changes sent to | subscribers | changes | deliveries | p50 | p99 | max |'
echo '|---|---|---|---|---|---|---|---|'
printf '%s\n' "${WS_ROWS[@]}"
echo
echo "- grabs, three nodes against one: $(awk -v a="$three" -v b="$one" 'BEGIN { printf "%.2f", a / b }')x (one machine, $(nproc) cores shared by every process)"
echo "- faults: $FAULTS"

#!/usr/bin/env bash
# Limits under abuse: one release server with its default rate limits ON (this is the one load
# run that keeps them), a fresh SQLite database, and `flood`: an ordinary user reading their
# points at a steady pace alone, then beside a flood of each route class (login, read, grab,
# write, upload) from one user or this one address. Prints the ordinary user's p50/p99 per phase,
# what each flood got (429s), and the server's resident memory before and after.
#
# Usage:
#   loadtest/run-flood.sh
#
# Environment:
#   SECONDS_EACH    length of each phase, seconds   (default 10)
#   FLOODERS        closed-loop flood workers       (default 32)
#   PACE_MS         the ordinary user's pace        (default 50)
#   SKIP_BUILD=1    use the binaries already in the target directory
set -euo pipefail

BIND=127.0.0.1:18090
BASE_URL="http://$BIND"
SECRET=flood-gateway-secret
SECONDS_EACH=${SECONDS_EACH:-10}
FLOODERS=${FLOODERS:-32}
PACE_MS=${PACE_MS:-50}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p points-engine -p points-loadtest
fi
SERVER_BIN=$TARGET_DIR/release/points-engine
FLOOD_BIN=$TARGET_DIR/release/flood

TMP=$(mktemp -d "${TMPDIR:-/tmp}/points-flood.XXXXXX")
SERVER_PID=
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

POINTS_BIND=$BIND DATABASE_URL="sqlite://$TMP/points.db" POINTS_UPLOAD_DIR="$TMP/uploads" \
    POINTS_DEV_LOGIN=1 POINTS_GATEWAY_SECRET=$SECRET POINTS_JOBS=0 RUST_LOG=error \
    "$SERVER_BIN" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
deadline=$((SECONDS + 60))
until curl -sf "$BASE_URL/readyz" >/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 40 "$TMP/server.log" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "run-flood.sh: server not ready" >&2; exit 1; }
    sleep 0.2
done

echo "flood phases=${SECONDS_EACH}s flooders=$FLOODERS pace=${PACE_MS}ms cpus=$(nproc) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
"$FLOOD_BIN" --url "$BASE_URL" --gateway-secret "$SECRET" --pid "$SERVER_PID" \
    --seconds "$SECONDS_EACH" --flooders "$FLOODERS" --pace-ms "$PACE_MS"

#!/usr/bin/env bash
# Sets up the environment, starts PostgreSQL and Neo4j on loopback ports, runs every test,
# and stops the servers again. Extra arguments go to pytest.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$("$root/scripts/setup.sh")
run=$(mktemp -d /tmp/circuitkb-test.XXXXXX)
chmod 755 "$run"
services=${CIRCUITKB_SERVICES:-$HOME/.cache/circuitkb/services}
pg_port=${CIRCUITKB_TEST_PG_PORT:-54329}
neo4j_port=${CIRCUITKB_TEST_NEO4J_PORT:-7697}

cleanup() {
  "$venv/bin/circuitkb" neo4j stop --dir "$run/neo4j" >/dev/null 2>&1 || true
  "$root/scripts/pg.sh" stop "$run/pg" >/dev/null 2>&1 || true
  rm -rf "$run"
}
trap cleanup EXIT

echo "starting PostgreSQL ..." >&2
CIRCUITKB_TEST_PG_URL=$("$root/scripts/pg.sh" start "$run/pg" "$pg_port")
export CIRCUITKB_TEST_PG_URL

echo "starting Neo4j ..." >&2
mkdir -p "$services"
"$venv/bin/circuitkb" neo4j start --dir "$run/neo4j" --port "$neo4j_port" --heap 2g >&2
export CIRCUITKB_TEST_NEO4J_URI="bolt://127.0.0.1:$neo4j_port"
export CIRCUITKB_TEST_NEO4J_USER=neo4j
CIRCUITKB_TEST_NEO4J_PASSWORD=$(cat "$run/neo4j/password")
export CIRCUITKB_TEST_NEO4J_PASSWORD

cd "$root"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"

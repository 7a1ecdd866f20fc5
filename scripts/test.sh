#!/usr/bin/env bash
# Sets up the environment, starts PostgreSQL and Neo4j on loopback ports, runs every test,
# and stops the servers again. Extra arguments go to pytest.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$("$root/scripts/setup.sh")
run=$(mktemp -d /tmp/circuitkb-test.XXXXXX)
chmod 755 "$run"
free_port() { "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_port=${CIRCUITKB_TEST_PG_PORT:-$(free_port)}
neo4j_port=${CIRCUITKB_TEST_NEO4J_PORT:-$(free_port)}

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
"$venv/bin/circuitkb" neo4j start --dir "$run/neo4j" --port "$neo4j_port" --heap 2g >&2
export CIRCUITKB_TEST_NEO4J_URI="bolt://127.0.0.1:$neo4j_port"
export CIRCUITKB_TEST_NEO4J_USER=neo4j
CIRCUITKB_TEST_NEO4J_PASSWORD=$(cat "$run/neo4j/password")
export CIRCUITKB_TEST_NEO4J_PASSWORD

# the browser tests drive Debian's chromium (browser downloads are not reachable); installed once, when missing
if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null; then
  echo "installing chromium for the browser tests ..." >&2
  sudo=$([[ $(id -u) == 0 ]] || echo "sudo -n")
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium; } >&2 \
    || echo "could not install chromium; the browser tests will be skipped (they fail under CI=true)" >&2
fi

cd "$root"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"

#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for development and tests, from Debian's package.
#   scripts/pg.sh start DIR [PORT]   -> prints the SQLAlchemy URL on stdout
#   scripts/pg.sh stop DIR
# Runs as the 'postgres' system user when started by root (PostgreSQL refuses root).
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop DIR [PORT]}
dir=${2:?usage: pg.sh start|stop DIR [PORT]}
port=${3:-54329}

find_bin() {
  local name=$1
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $found && -x $found/$name ]] && { echo "$found/$name"; return; }
  return 1
}

ensure_installed() {
  if ! find_bin initdb >/dev/null; then
    echo "installing PostgreSQL from Debian's packages..." >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
}

as_pg() {
  if [[ $(id -u) == 0 ]]; then
    su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

case $cmd in
  start)
    ensure_installed
    initdb=$(find_bin initdb); pg_ctl=$(find_bin pg_ctl)
    mkdir -p "$dir"
    [[ $(id -u) == 0 ]] && chown postgres "$dir"
    if [[ ! -f $dir/data/PG_VERSION ]]; then
      as_pg "$initdb" -D "$dir/data" -U circuitkb --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! as_pg "$pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_pg "$pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2 \
        || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    fi
    echo "postgresql://circuitkb@127.0.0.1:$port/postgres"
    ;;
  stop)
    pg_ctl=$(find_bin pg_ctl)
    if [[ -f $dir/data/PG_VERSION ]]; then
      as_pg "$pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    ;;
  *)
    echo "usage: pg.sh start|stop DIR [PORT]" >&2; exit 2
    ;;
esac

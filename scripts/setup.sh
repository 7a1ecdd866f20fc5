#!/usr/bin/env bash
# Creates (or reuses) the project's Python environment and installs circuitkb into it.
# The heavy dependencies (torch is several GB) are installed only when pyproject.toml changes;
# the environment lives outside the work tree so every clone on this machine shares it.
# Prints the environment's folder on stdout.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CIRCUITKB_VENV:-$HOME/.cache/circuitkb/venv}
stamp=$venv/.circuitkb-deps
want=$(sha256sum "$root/pyproject.toml" | cut -c1-16)

python=${PYTHON:-}
if [[ -z $python ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
[[ -n $python ]] || { echo "Python 3.11 is needed (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

if [[ ! -x $venv/bin/python ]]; then
  echo "creating the environment in $venv ..." >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
fi
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "installing dependencies (first time: several minutes, torch is large) ..." >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  (cd "$root" && "$venv/bin/python" -m pip install -q -e ".[test]") >&2
  echo "$want" > "$stamp"
else
  # dependencies are current; only point the environment at this checkout
  (cd "$root" && "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e .) >&2
fi
# the project's own modules compiled once: a command then starts without compiling them, even
# where PYTHONDONTWRITEBYTECODE keeps Python from caching bytecode itself
"$venv/bin/python" -m compileall -q -j 0 "$root/kb" "$root/ingest" "$root/schema" "$root/app" >/dev/null 2>&1 || true
echo "$venv"

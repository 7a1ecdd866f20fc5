#!/usr/bin/env bash
# Sets up the environment and runs `circuitkb demo` on the embedded default (no server needed).
# Arguments go to `circuitkb demo` (e.g. a folder of real graphs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$("$root/scripts/setup.sh")
exec "$venv/bin/circuitkb" demo "$@"

#!/usr/bin/env bash
# The ferrolb lab: `tests/lab.sh up | status | down` (as root).
#   up      installs what is missing, builds the control plane (cached) and the lab, starts it, prints
#           how to reach it, and exits with the lab left running
#   status  reports every lab run on this machine
#   down    removes runs left up (or abandoned) by name and pid
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "lab.sh: the lab creates network namespaces: run it as root" >&2
  exit 1
fi
if [ "${1:-}" = up ]; then
  "$here/install-prerequisites.sh"
  "$here/build-control-plane.sh"
fi
cargo build --quiet --locked -p ferrolb-lab -p ferrolb-controller -p ferrolb-speaker --bins
exec "${CARGO_TARGET_DIR:-target}/debug/lab" "$@"

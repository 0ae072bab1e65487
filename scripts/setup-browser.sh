#!/usr/bin/env bash
# Idempotent setup for the SDK test harness (tests/sdk/):
#   * installs Debian's chromium (-> /usr/bin/chromium) if it is missing (needs root or sudo);
#   * runs `npm ci` in tests/sdk/node if node_modules is missing (or stale vs package-lock.json).
# Safe to run repeatedly; does nothing when everything is already in place.
# Usage: scripts/setup-browser.sh [--check]   (--check: only report, exit 1 if something is missing)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_DIR="$ROOT/tests/sdk/node"
CHROMIUM=/usr/bin/chromium
CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1

missing=0

# --- chromium ---------------------------------------------------------------------------------
if [[ -x "$CHROMIUM" ]]; then
  echo "chromium: present ($("$CHROMIUM" --version 2>/dev/null || echo unknown version))"
elif [[ $CHECK_ONLY == 1 ]]; then
  echo "chromium: MISSING ($CHROMIUM)"; missing=1
else
  echo "chromium: installing via apt-get"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install chromium" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends chromium fonts-liberation
  "$CHROMIUM" --version 2>/dev/null
fi

# --- npm packages -----------------------------------------------------------------------------
command -v npm >/dev/null || { echo "npm not found (need node >= 18)" >&2; exit 1; }
stamp="$NODE_DIR/node_modules/.package-lock.json"   # written by npm ci/install
if [[ -d "$NODE_DIR/node_modules" && -f "$stamp" && ! "$NODE_DIR/package-lock.json" -nt "$stamp" ]]; then
  echo "npm packages: present ($NODE_DIR/node_modules)"
elif [[ $CHECK_ONLY == 1 ]]; then
  echo "npm packages: MISSING or stale ($NODE_DIR/node_modules)"; missing=1
else
  echo "npm packages: npm ci in $NODE_DIR"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund)
fi

exit $missing

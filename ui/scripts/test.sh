#!/usr/bin/env bash
# Installs what the UI tests need (Debian's Chromium, npm packages from the lock) and runs them.
# Usable from CI: `bash ui/scripts/test.sh`. Never downloads a browser build of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # Not `npm ci`: see build_ui in scripts/lib.sh (https://github.com/npm/cli/issues/4828).
  npm install --no-audit --no-fund
fi

FORCE_BUILD=1 npm test

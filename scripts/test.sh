#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the machine lacks (scripts/setup.sh for the
# media tools and local Redis/PostgreSQL, then test-only tools and npm packages), then runs vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1 FORCE_COLOR=0

log() { printf '[test] %s\n' "$*" >&2; }

# Media tools and local Redis/PostgreSQL: the same set-up `npm start` runs, plus a line for each piece
# it cannot provide (and a stop when a media tool is missing).
bash scripts/setup.sh --for-tests

# The console's browser test drives Debian's Chromium (playwright-core's own browser download does not
# work here): installed from Debian's packages like the media tools.
if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing chromium from Debian's packages (the console's browser test)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
  else
    log "chromium missing and cannot install it (need root and apt-get): the console's browser test will fail"
  fi
fi

# Test-only tools: heif-enc makes the HEIC fixtures, strace proves ffmpeg never opens what a
# hostile playlist names, and pgbouncer runs the transaction-mode test (test/helpers/pgbouncer.ts).
if ! command -v heif-enc >/dev/null || ! command -v strace >/dev/null || ! { command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing libheif-examples, strace and pgbouncer from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libheif-examples strace pgbouncer >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libheif-examples strace pgbouncer >/dev/null; }
  else
    log "heif-enc/strace/pgbouncer missing and cannot install them (need root and apt-get)"; exit 1
  fi
fi

# Install packages when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages (npm ci)"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi

# The web console's static files (console/dist), built when missing or older than their sources.
bash scripts/build-console.sh

node node_modules/vitest/vitest.mjs run "$@"

# Node 24, the runtime the image ships (issue 13): after a whole-suite run on this Node, the pure and
# real-parts tiers (sharp, ffmpeg, crypto, Redis Cluster, PgBouncer, the stores) and the short soak,
# which runs every role as its own process, again on Node 24 from the npm registry's `node` package.
# The rest of the e2e tier is left to the first run to keep the suite well under 15 minutes.
# MEDIAFLOW_NODE24=0 skips it; a run with arguments (a file, a filter) never does it.
if [ $# -eq 0 ] && [ "${MEDIAFLOW_NODE24:-1}" != 0 ]; then
  log "again on Node 24: test/unit, test/integration and the short soak"
  bash scripts/test-node24.sh test/unit test/integration test/e2e/soak-short.test.ts
fi

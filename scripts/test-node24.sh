#!/usr/bin/env bash
# The test suite (or the vitest arguments given) on Node 24, whose binary comes from the npm
# registry's `node` package (no other download), installed once into a cache outside the project:
#   bash scripts/test-node24.sh                               # the whole suite
#   bash scripts/test-node24.sh test/e2e/soak-short.test.ts   # the short soak only
# It assumes `npm test`'s set-up has run (media tools, local Redis and PostgreSQL, node_modules),
# checks what must work on 24 first (scripts/node24-check.ts: sharp, the ffmpeg runner, crypto,
# require(esm)), then runs vitest on Node 24. Child processes the tests start run on it too.
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1 FORCE_COLOR=0

NODE24_VERSION="${NODE24_VERSION:-24.21.0}"
NODE24_PREFIX="${NODE24_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/mediaflow-node24}"
NODE24_BIN="$NODE24_PREFIX/node_modules/node/bin"
log() { printf '[test-node24] %s\n' "$*" >&2; }

if [ ! -d node_modules ]; then
  log "node_modules is missing: run npm test (or npm ci) first"
  exit 1
fi
if [ "$("$NODE24_BIN/node" --version 2>/dev/null || true)" != "v$NODE24_VERSION" ]; then
  log "installing node@$NODE24_VERSION from the npm registry into $NODE24_PREFIX"
  mkdir -p "$NODE24_PREFIX"
  # The package's install script brings the binary as another package of the same registry.
  install=(npm install --prefix "$NODE24_PREFIX" --no-save --no-audit --no-fund --loglevel=error "node@$NODE24_VERSION")
  if command -v flock >/dev/null; then flock /tmp/npm.lock "${install[@]}"; else "${install[@]}"; fi
fi

# First on PATH, so `process.execPath` children and anything started as `node`/`npm` run on 24.
export PATH="$NODE24_BIN:$PATH"
log "$(node --version) at $(command -v node)"
EXPECT_NODE_MAJOR=24 node --import tsx scripts/node24-check.ts
exec node node_modules/vitest/vitest.mjs run "$@"

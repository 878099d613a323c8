#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the machine lacks (npm packages,
# ffmpeg from Debian), starts local Redis/PostgreSQL when installed but stopped, then runs vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1 FORCE_COLOR=0

log() { printf '[test] %s\n' "$*" >&2; }

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ffmpeg from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg >/dev/null; }
  else
    log "ffmpeg/ffprobe missing and cannot install them (need root and apt-get)"; exit 1
  fi
fi

# HEIC decoding (heif-convert) and its fixtures (heif-enc), and strace for the tests that prove
# ffmpeg never opens what a hostile playlist names.
if ! command -v heif-convert >/dev/null || ! command -v heif-enc >/dev/null || ! command -v strace >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing libheif-examples and strace from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libheif-examples strace >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libheif-examples strace >/dev/null; }
  else
    log "heif-convert/heif-enc/strace missing and cannot install them (need root and apt-get)"; exit 1
  fi
fi

redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
if command -v redis-cli >/dev/null && ! redis-cli -u "$redis_url" ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    log "starting local redis-server"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
fi

if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if command -v pg_ctlcluster >/dev/null; then
    log "starting local PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.1; done
  fi
fi

# Install packages when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages (npm ci)"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi

exec node node_modules/vitest/vitest.mjs run "$@"

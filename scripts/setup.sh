#!/usr/bin/env bash
# What `npm start` (as its prestart) and `npm test` (through scripts/test.sh) need from the machine:
# - the media tools (ffmpeg/ffprobe, and heif-convert from libheif-examples), installed from Debian's
#   packages when this runs as root and apt-get is there;
# - a local Redis and PostgreSQL that are installed but stopped, started on their default ports.
#
#   scripts/setup.sh              for `npm start`: fixes what it can and says only what it did. What it
#                                 cannot fix, the service itself reports at start in one line each,
#                                 knowing its role (`--role api` needs no ffmpeg), so nothing is said twice.
#   scripts/setup.sh --for-tests  for `npm test`: also prints one line per missing piece with the command
#                                 that gets it, and exits 1 when a media tool is still missing.
#
# Never runs when NODE_ENV=production, and never acts on a REDIS_URL or DATABASE_URL whose host is not
# this machine (127.0.0.1, localhost, ::1), nor on a local one at a port other than the default: a
# Redis or PostgreSQL there is the operator's own, and starting the system one would not serve it.
# MEDIAFLOW_SETUP=0 skips everything; MEDIAFLOW_SETUP_INSTALL=0 skips package installs only.
#
# Checks use bash builtins only (no redis-cli or pg_isready needed), so when everything is there this
# costs a few milliseconds and runs no package manager.
set -uo pipefail

strict=0
[ "${1:-}" = "--for-tests" ] && strict=1

[ "${NODE_ENV:-}" = "production" ] && exit 0
[ "${MEDIAFLOW_SETUP:-1}" = "0" ] && exit 0

log() { printf '[setup] %s\n' "$*" >&2; }
# In --for-tests mode, a piece this script cannot provide: say how to get it.
need() {
  if [ "$strict" = 1 ]; then log "$1"; fi
}

# The command that installs Debian package $1 or Homebrew formula $2, for this machine.
install_hint() {
  if command -v apt-get >/dev/null 2>&1; then
    if [ "$EUID" = 0 ]; then printf '`apt-get install -y %s`' "$1"; else printf '`sudo apt-get install -y %s`' "$1"; fi
  elif command -v brew >/dev/null 2>&1 || [ "$(uname -s 2>/dev/null)" = Darwin ]; then
    printf '`brew install %s`' "$2"
  else
    printf 'your package manager (Debian: `apt-get install -y %s`, macOS: `brew install %s`)' "$1" "$2"
  fi
}

can_install() {
  [ "$EUID" = 0 ] && [ "${MEDIAFLOW_SETUP_INSTALL:-1}" != "0" ] && command -v apt-get >/dev/null 2>&1
}

apt_install() {
  log "installing $* from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; } \
    || log "apt-get install -y $* failed; run it by hand to see why"
}

# A tool is there when its configured path (FFMPEG_PATH, …) or, unset, its name on PATH runs.
has_tool() {
  local configured=$1 name=$2
  command -v "${configured:-$name}" >/dev/null 2>&1
}

# --- media tools ---------------------------------------------------------------------------------
# A tool given by path (FFMPEG_PATH, …) is the operator's: installing Debian's would not be used.
pkgs=()
if [ -z "${FFMPEG_PATH:-}${FFPROBE_PATH:-}" ] && { ! has_tool "" ffmpeg || ! has_tool "" ffprobe; }; then pkgs+=(ffmpeg); fi
if [ -z "${HEIF_CONVERT_PATH:-}" ] && ! has_tool "" heif-convert; then pkgs+=(libheif-examples); fi
if [ "${#pkgs[@]}" -gt 0 ] && can_install; then apt_install "${pkgs[@]}"; fi

tools_missing=0
if ! has_tool "${FFMPEG_PATH:-}" ffmpeg || ! has_tool "${FFPROBE_PATH:-}" ffprobe; then
  need "ffmpeg/ffprobe missing (audio and video need them): run $(install_hint ffmpeg ffmpeg), or set FFMPEG_PATH and FFPROBE_PATH"
  tools_missing=1
fi
if ! has_tool "${HEIF_CONVERT_PATH:-}" heif-convert; then
  need "heif-convert missing (HEIC photos need it): run $(install_hint libheif-examples libheif), or set HEIF_CONVERT_PATH"
  tools_missing=1
fi

# --- local services ------------------------------------------------------------------------------
# "host port" of a URL (userinfo, path and query dropped; [::1] unbracketed), default port filled in.
url_host_port() {
  local rest=${1#*://} host port
  rest=${rest%%[/?#]*}
  rest=${rest##*@}
  if [ "${rest#\[}" != "$rest" ]; then
    host=${rest#\[}; host=${host%%]*}
    port=${rest#*]}; port=${port#:}
  else
    host=${rest%%:*}
    port=${rest#"$host"}; port=${port#:}
  fi
  printf '%s %s\n' "${host:-localhost}" "${port:-$2}"
}

is_local() { case "$1" in 127.0.0.1 | localhost | ::1) return 0 ;; *) return 1 ;; esac; }

# Something accepts TCP connections at host:port (bash's /dev/tcp; a refusal on loopback is immediate).
answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() {
  local i
  for ((i = 0; i < $3; i++)); do
    answers "$1" "$2" && return 0
    sleep 0.1
  done
  return 1
}

read -r redis_host redis_port <<<"$(url_host_port "${REDIS_URL:-redis://127.0.0.1:6379}" 6379)"
if is_local "$redis_host" && [ "$redis_port" = 6379 ] && ! answers "$redis_host" "$redis_port"; then
  if command -v redis-server >/dev/null 2>&1; then
    log "starting local redis-server on 127.0.0.1:6379"
    if [ "$EUID" = 0 ]; then dir=/var/lib/redis logdir=/var/log/redis; else dir="${TMPDIR:-/tmp}/mediaflow-redis-$EUID" logdir=$dir; fi
    mkdir -p "$dir" "$logdir" 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir "$dir" --logfile "$logdir/ci.log" >/dev/null 2>&1 || true
    wait_for "$redis_host" "$redis_port" 50 || log "redis-server did not come up; see $logdir/ci.log"
  else
    need "Redis missing on 127.0.0.1:6379: run $(install_hint redis-server redis), or \`docker run -d -p 127.0.0.1:6379:6379 redis:7.4-alpine\`"
  fi
fi

database_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/mediaflow}
read -r pg_host pg_port <<<"$(url_host_port "$database_url" 5432)"
# A `host=` parameter (a Unix socket, most often) names a server this script does not look for.
case "$database_url" in *[?\&]host=*) pg_host=elsewhere ;; esac
if is_local "$pg_host" && [ "$pg_port" = 5432 ] && ! answers "$pg_host" "$pg_port"; then
  clusters=(/etc/postgresql/*/main)
  if [ "$EUID" = 0 ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d "${clusters[0]}" ]; then
    version=${clusters[0]#/etc/postgresql/}; version=${version%/main}
    log "starting local PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    wait_for "$pg_host" "$pg_port" 100 || log "PostgreSQL $version did not come up; see /var/log/postgresql/"
  else
    need "PostgreSQL missing on 127.0.0.1:5432: run $(install_hint postgresql postgresql@16), or \`docker run -d -p 127.0.0.1:5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16-alpine\`"
  fi
fi

# --- the web console ------------------------------------------------------------------------------
# Served at /console from console/dist: built when missing or stale (needs `npm ci`'s devDependencies;
# production images build it in the Dockerfile). In --for-tests mode scripts/test.sh builds it after
# installing packages, so here it is only for `npm start`.
if [ "$strict" = 0 ]; then
  here=${0%/*}
  [ "$here" = "$0" ] && here=.
  bash "$here/build-console.sh" --quiet || log "the web console was not built; /console answers 404 until \`npm run build:console\` runs"
fi

if [ "$strict" = 1 ] && [ "$tools_missing" = 1 ]; then exit 1; fi
exit 0

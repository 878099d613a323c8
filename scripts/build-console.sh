#!/usr/bin/env bash
# Builds the web console (console/ → console/dist, served by the API at /console) when the build is
# missing or older than any of its sources or the lockfile. Called by scripts/setup.sh (npm start)
# and scripts/test.sh (npm test), so a fresh clone needs nothing more than `npm ci`.
#   scripts/build-console.sh            build only when missing or stale, saying so
#   scripts/build-console.sh --quiet    the same, silent unless it fails (npm start's set-up)
#   scripts/build-console.sh --force    build now
# Bash builtins only for the check (a bare machine may have no find), so a fresh build costs nothing.
set -uo pipefail
here=${BASH_SOURCE[0]%/*}
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
cd "$here/.." || exit 1

quiet=0 force=0
for a in "$@"; do
  case "$a" in --quiet) quiet=1 ;; --force) force=1 ;; esac
done

stamp=console/dist/index.html
stale=$force
if [ ! -f "$stamp" ]; then
  stale=1
elif [ "$stale" = 0 ]; then
  shopt -s globstar nullglob
  for f in package-lock.json console/*.* console/src/**/*; do
    if [ -f "$f" ] && [ "$f" -nt "$stamp" ]; then stale=1; break; fi
  done
fi
[ "$stale" = 0 ] && exit 0

if [ ! -f node_modules/vite/bin/vite.js ]; then
  printf '[console] vite is not installed (run `npm ci`): the web console at /console is not built\n' >&2
  exit 1
fi
[ "$quiet" = 1 ] || printf '[console] building the web console (console/dist)\n' >&2
if ! out=$(node node_modules/vite/bin/vite.js build --config console/vite.config.ts --logLevel warn 2>&1); then
  printf '%s\n[console] the web console build failed\n' "$out" >&2
  exit 1
fi
[ "$quiet" = 1 ] || { [ -n "$out" ] && printf '%s\n' "$out" >&2; }
exit 0

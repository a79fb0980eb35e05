#!/usr/bin/env bash
# The web app (web/): its npm packages when package-lock.json changed, and a build into web/dist when a
# source is newer than the last build. The query API serves web/dist (WEB_DIST_DIR).
set -euo pipefail
cd "$(dirname "$0")/../web"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "web: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ ! -f dist/index.html ] \
  || [ -n "$(find index.html vite.config.ts tsconfig.json package.json package-lock.json src public \
              -newer dist/index.html -print -quit 2>/dev/null)" ]; then
  echo "web: building web/dist"
  npm run --silent build
fi

#!/usr/bin/env bash
# issue 10: limits. Makes sure a Redis answers on 127.0.0.1:6379 (capture's shared rate limits): the
# machine's own if it runs, otherwise Debian's redis-server started by us (nothing kept on disk, stopped by
# `make down`).
set -euo pipefail
cd "$(dirname "$0")/.."

answers() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }
answers && exit 0

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis: installing Debian's redis-server"
  [ -f var/.apt-updated ] || { apt-get update -q >/dev/null; mkdir -p var; touch var/.apt-updated; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
fi
mkdir -p var/log
echo "redis: starting one on 127.0.0.1:6379"
redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes \
  --pidfile "$PWD/var/redis.pid" --logfile "$PWD/var/log/redis.log"
for _ in $(seq 50); do answers && break; sleep 0.1; done
touch var/.redis-started-by-us

#!/usr/bin/env bash
# make down: stop what make up started, by pid (supervisord stops its programs; then our own Postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f var/supervisord.pid ]; then
  pid=$(cat var/supervisord.pid)
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "down: stopped supervisord ($pid) and its programs"
  fi
  rm -f var/supervisord.pid
fi
if [ -f var/.postgres-started-by-us ]; then
  BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  RUNAS=(); [ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --)
  "${RUNAS[@]}" "$BIN/pg_ctl" -D "$PWD/var/postgres" -m fast stop >/dev/null && echo "down: stopped our Postgres"
  rm -f var/.postgres-started-by-us
fi
if [ -f var/.redis-started-by-us ]; then  # issue 10: limits
  [ -f var/redis.pid ] && kill -TERM "$(cat var/redis.pid)" 2>/dev/null && echo "down: stopped our Redis"
  rm -f var/.redis-started-by-us var/redis.pid
fi

#!/usr/bin/env bash
# Makes sure a Postgres answers on 127.0.0.1:5432: the machine's own if it runs, otherwise Debian's
# postgresql package with a cluster of ours in var/postgres (trust auth, stopped by `make down`).
set -euo pipefail
cd "$(dirname "$0")/.."

answers() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
answers && exit 0

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "postgres: installing Debian's postgresql"
  [ -f var/.apt-updated ] || { apt-get update -q >/dev/null; mkdir -p var; touch var/.apt-updated; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
DATA=$PWD/var/postgres
RUNAS=()
if [ "$(id -u)" = 0 ]; then RUNAS=(runuser -u postgres --); fi
if [ ! -f "$DATA/PG_VERSION" ]; then
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres "$DATA"
  "${RUNAS[@]}" "$BIN/initdb" -D "$DATA" -U postgres --auth=trust >/dev/null
fi
echo "postgres: starting a local cluster in $DATA on 127.0.0.1:5432"
"${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -o "-p 5432 -k $DATA -c listen_addresses=127.0.0.1" -w start >/dev/null
touch var/.postgres-started-by-us

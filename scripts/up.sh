#!/usr/bin/env bash
# make up: install what is missing, start the pipeline under supervisord, create the dev project.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

db=${POSTGRES_DSN##*/}
admin_dsn=${POSTGRES_DSN%/*}/postgres
.venv/bin/python - "$admin_dsn" "$db" <<'PY'
import asyncio, sys, asyncpg
async def main(dsn, name):
    conn = await asyncpg.connect(dsn)
    if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
asyncio.run(main(*sys.argv[1:]))
PY
project=$(.venv/bin/python -m workers admin create-project --name default --token "$DEV_TOKEN" --api-key "$DEV_API_KEY" | tail -n 1)

if [ -f var/supervisord.pid ] && kill -0 "$(cat var/supervisord.pid)" 2>/dev/null; then
  .venv/bin/supervisorctl -c supervisord.conf start all >/dev/null || true
else
  # a new Tansu starts empty (it keeps nothing on disk): the Flink job's checkpoints hold offsets into the
  # old topics, and resumed from them it would wait past the new topics' end, skipping what comes first
  rm -rf "${FLINK_CHECKPOINT_DIR:-var/flink-checkpoints}"
  .venv/bin/supervisord -c supervisord.conf
fi

wait_http() {
  for _ in $(seq 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "up: $1 did not answer; see var/log/" >&2; .venv/bin/supervisorctl -c supervisord.conf status >&2; exit 1
}
wait_http "http://$CAPTURE_HOST:$CAPTURE_METRICS_PORT/healthz"
wait_http "http://$CAPTURE_HOST:$PERSONS_METRICS_PORT/healthz"
wait_http "http://$CAPTURE_HOST:$WRITER_METRICS_PORT/healthz"
wait_http "http://$CAPTURE_HOST:$DLQ_METRICS_PORT/healthz"
for _ in $(seq 150); do (exec 3<>"/dev/tcp/$QUERY_HOST/$QUERY_PORT") 2>/dev/null && break; sleep 0.2; done

cat <<MSG

user-analytics is up (supervisord; logs in var/log/, stop with: make down)
  project     $project
  web app     http://$QUERY_HOST:$QUERY_PORT/   (log in with the project's API key: $DEV_API_KEY)
  capture     http://$CAPTURE_HOST:$CAPTURE_PORT    (PostHog: host=this URL; Amplitude: server_url=this URL/2/httpapi)
  token       $DEV_TOKEN
  query API   http://$QUERY_HOST:$QUERY_PORT/api/{trends,funnels,retention,sessions,paths,events,persons,sql}
              (Authorization: Bearer $DEV_API_KEY)
  metrics     capture :$CAPTURE_METRICS_PORT  persons :$PERSONS_METRICS_PORT  writer+query :$WRITER_METRICS_PORT  dlq :$DLQ_METRICS_PORT  flink :$FLINK_METRICS_PORT  (/metrics)
  Flink UI    http://127.0.0.1:$FLINK_REST_PORT   (the job's mini-cluster, once it has started: ~10 s)
  dead letters  .venv/bin/python -m workers dlq --list   (and --replay; see README, Operations)

Send an event and look at it:
  curl -s http://$CAPTURE_HOST:$CAPTURE_PORT/batch/ -H 'Content-Type: application/json' \\
    -d '{"api_key":"$DEV_TOKEN","batch":[{"event":"hello","distinct_id":"user-1","properties":{"plan":"pro"}}]}'
  curl -s http://$QUERY_HOST:$QUERY_PORT/api/sql -H 'Authorization: Bearer $DEV_API_KEY' \\
    -d '{"query":"SELECT event, distinct_id, person_id, timestamp FROM events ORDER BY timestamp DESC LIMIT 10"}'
  curl -s http://$QUERY_HOST:$QUERY_PORT/api/trends -H 'Authorization: Bearer $DEV_API_KEY' \\
    -d '{"events":[{"event":"hello"}],"measure":"totals","interval":"day","date_from":"$(date -u -d '-6 days' +%F)","date_to":"$(date -u +%F)"}'
MSG

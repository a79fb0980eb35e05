-- A chunk of the events export (GET /api/events?format=ndjson|csv): the project's events in [after, before)
-- oldest first by (timestamp, uuid text), the next {chunk} stored rows after the last one written (keyset
-- {from_time}, {from_uuid}), duplicates included (no FINAL): workers/query/events.py drops a redelivered
-- event's second copy, which sorts right beside the first. The filters fragment is filled in by
-- workers/query/events.py; values are {parameters}.
SELECT toString(uuid) AS uuid, event, distinct_id, toString(person_id) AS person_id, timestamp, properties
FROM events
WHERE project_id = {project_id:UInt64}
  AND (timestamp, toString(uuid)) > ({from_time:DateTime64(6, 'UTC')}, {from_uuid:String})
  AND timestamp >= {after:DateTime64(6, 'UTC')}
  AND timestamp < {before:DateTime64(6, 'UTC')}
  AND /*filters*/
ORDER BY timestamp, uuid
LIMIT {chunk:UInt32}

-- Recent events of a project, newest first, paged by (timestamp, uuid text) (`cursor`): the newest {scan}
-- stored rows, duplicates included (no FINAL: a top-N read stops early). workers/query/events.py drops a
-- redelivered event's second copy (the same uuid, next to it in this order) and asks for more rows when
-- duplicates left the page short. The filters fragment is filled in by workers/query/events.py; values are
-- {parameters}.
SELECT toString(uuid) AS uuid, event, distinct_id, toString(person_id) AS person_id, timestamp, properties
FROM events
WHERE project_id = {project_id:UInt64}
  AND (timestamp, toString(uuid)) < ({before:DateTime64(6, 'UTC')}, {before_uuid:String})
  AND timestamp >= {after:DateTime64(6, 'UTC')}
  AND /*filters*/
ORDER BY timestamp DESC, uuid DESC
LIMIT {scan:UInt32}

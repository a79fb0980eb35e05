-- Recent events of a project, newest first, paged by (timestamp, uuid) (`cursor`), each event once.
-- The filters fragment is filled in by workers/events_api.py; values are {parameters}.
SELECT toString(uuid) AS uuid, event, distinct_id, toString(person_id) AS person_id, timestamp, properties
FROM events FINAL
WHERE project_id = {project_id:UInt64}
  AND (timestamp, toString(uuid)) < ({before:DateTime64(6, 'UTC')}, {before_uuid:String})
  AND timestamp >= {after:DateTime64(6, 'UTC')}
  AND /*filters*/
ORDER BY timestamp DESC, toString(uuid) DESC
LIMIT {limit:UInt32}

-- GET /api/live: the project's events stored after the last one sent (inserted_at, then uuid text), oldest
-- first, at most {max_rows}. Only events whose own time is within {lookback_seconds} of now are looked at,
-- so a poll reads the newest days only. {event} = '' means every event.
SELECT toString(uuid) AS uuid, event, distinct_id, toString(person_id) AS person_id, timestamp, properties,
       inserted_at
FROM events
WHERE project_id = {project_id:UInt64}
  AND timestamp >= now64(6) - toIntervalSecond({lookback_seconds:UInt32})
  AND (inserted_at, toString(uuid)) > ({after:DateTime64(6, 'UTC')}, {after_uuid:String})
  AND ({event:String} = '' OR event = {event:String})
ORDER BY inserted_at, toString(uuid)  -- the order the cursor compares in
LIMIT {max_rows:UInt32}

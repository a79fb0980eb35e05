-- The events in the range with their session, as the Flink job cuts them: an event with an SDK session id
-- is in that session (`$session_id`; Amplitude's as amp:<device or user id>:<session id>: sdk_key); any
-- other event is in the stored `window` session of its distinct id whose [start, end] (ms) holds it, found
-- by ASOF (the last one starting at or before it); an event in none (its session still open, or too late for
-- the job) is left out. Whether an event has an SDK session depends on its protocol and session_id only, so
-- the properties (read for an Amplitude key's device or user id) are read only where Amplitude events are.
-- The filters fragment is filled in by the caller (thrice: once per kind).
SELECT uuid, timestamp, event, session_id
FROM events
WHERE project_id = {project_id:UInt64}
  AND timestamp >= {start:DateTime64(6, 'UTC')}
  AND timestamp < {end:DateTime64(6, 'UTC')}
  AND protocol != 'amplitude' AND session_id != ''
  AND /*filters*/
UNION ALL
-- aliased apart from the session_id column, which its WHERE reads (UNION ALL takes the first branch's names)
SELECT uuid, timestamp, event, /*sdk_key*/ AS sdk_key
FROM events
WHERE project_id = {project_id:UInt64}
  AND timestamp >= {start:DateTime64(6, 'UTC')}
  AND timestamp < {end:DateTime64(6, 'UTC')}
  AND protocol = 'amplitude' AND toInt64OrZero(session_id) > 0
  AND /*filters*/
UNION ALL
SELECT e.uuid AS uuid, e.timestamp AS timestamp, e.event AS event, s.session_id AS session_id
FROM
(
    SELECT uuid, timestamp, event, distinct_id, toDateTime64(timestamp, 3, 'UTC') AS ms
    FROM events
    WHERE project_id = {project_id:UInt64}
      AND timestamp >= {start:DateTime64(6, 'UTC')}
      AND timestamp < {end:DateTime64(6, 'UTC')}
      AND if(protocol = 'amplitude', toInt64OrZero(session_id) <= 0, session_id = '')
      AND /*filters*/
) AS e
ASOF INNER JOIN
(
    -- a window session is one row (a replay is the same row again)
    SELECT distinct_id, session_id, start, `end`
    FROM sessions
    WHERE project_id = {project_id:UInt64}
      AND kind = 'window'
      AND start < {end:DateTime64(6, 'UTC')}
      AND `end` >= {start:DateTime64(6, 'UTC')}
) AS s
ON e.distinct_id = s.distinct_id AND e.ms >= s.start
WHERE e.ms <= s.`end`

-- The events in the range with the stored session (sessions_merged) each belongs to, as the Flink job puts
-- them: by the SDK's session id (`explicit`; Amplitude's as amp:<device or user id>:<session id>), or else
-- the `window` session of its distinct id. An event belongs to the session of its key whose [start, end]
-- (ms) holds it: ASOF finds the last one starting at or before it. Events in no stored session (still
-- open, or too late for the job) are left out. The filters fragment is filled in by the caller.
SELECT e.uuid AS uuid, e.timestamp AS timestamp, e.event AS event, s.session_id AS session_id
FROM
(
    SELECT uuid, timestamp, event, toDateTime64(timestamp, 3, 'UTC') AS ms,
        multiIf(protocol = 'amplitude' AND toInt64OrZero(session_id) > 0,
                concat('amp:', coalesce(nullIf(JSONExtractString(properties, '$device_id'), ''),
                                        nullIf(JSONExtractString(properties, '$user_id'), ''), distinct_id),
                       ':', session_id),
                protocol != 'amplitude' AND session_id != '', session_id,
                '') AS sdk_key,
        if(sdk_key = '', 'window', if(protocol = 'amplitude', 'amplitude', 'explicit')) AS kind,
        if(sdk_key = '', distinct_id, sdk_key) AS session_key
    FROM events
    WHERE project_id = {project_id:UInt64}
      AND timestamp >= {start:DateTime64(6, 'UTC')}
      AND timestamp < {end:DateTime64(6, 'UTC')}
      AND /*filters*/
) AS e
ASOF INNER JOIN
(
    SELECT kind, if(kind = 'window', distinct_id, session_id) AS session_key, session_id, start, `end`
    FROM sessions_merged
    WHERE project_id = {project_id:UInt64}
      -- only the sessions with a row overlapping the range are folded (pushed into the view's scan)
      AND session_id IN (
          SELECT session_id FROM sessions
          WHERE project_id = {project_id:UInt64}
            AND start < {end:DateTime64(6, 'UTC')}
            AND `end` >= {start:DateTime64(6, 'UTC')}
      )
      AND start < {end:DateTime64(6, 'UTC')}
      AND `end` >= {start:DateTime64(6, 'UTC')}
) AS s
ON e.kind = s.kind AND e.session_key = s.session_key AND e.ms >= s.start
WHERE e.ms <= s.`end`

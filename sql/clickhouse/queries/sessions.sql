-- Sessions (the Flink job's, folded by sessions_merged): each bucketed (project time zone) by its start,
-- with its duration and bounce (a session of one event). With filters, only the sessions with an event in
-- the range matching all of them. The bucket and sessions fragments are filled in by workers/query/sessions.py;
-- values are {parameters}.
SELECT
    /*bucket*/ AS bucket,
    count() AS sessions,
    avg(duration_seconds) AS avg_duration,
    avg(bounced) AS bounce_rate
FROM
(
    SELECT start AS timestamp, duration_seconds, bounced
    FROM sessions_merged
    WHERE project_id = {project_id:UInt64}
      -- only the sessions with a row starting in the range are folded (pushed into the view's scan)
      AND session_id IN (
          SELECT session_id FROM sessions
          WHERE project_id = {project_id:UInt64}
            AND start >= {start:DateTime64(6, 'UTC')}
            AND start < {end:DateTime64(6, 'UTC')}
      )
      AND start >= {start:DateTime64(6, 'UTC')}
      AND start < {end:DateTime64(6, 'UTC')}
      AND /*sessions*/
)
GROUP BY bucket
ORDER BY bucket

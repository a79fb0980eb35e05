-- Sessions by `$session_id`: each bucketed (project time zone) by its first event in the range;
-- duration = last event - first event; a bounce is a session of one event (one uuid: a redelivered event
-- is the same event). The bucket fragment and the filters fragment
-- are filled in by workers/sessions.py; values are {parameters}.
SELECT
    /*bucket*/ AS bucket,
    count() AS sessions,
    avg(duration) AS avg_duration,
    avg(bounce) AS bounce_rate
FROM
(
    SELECT first_seen AS timestamp, duration, bounce
    FROM
    (
    SELECT
        session_id,
        min(timestamp) AS first_seen,
        dateDiff('microsecond', min(timestamp), max(timestamp)) / 1000000 AS duration,
        uniqExact(uuid) = 1 AS bounce
    FROM events
    WHERE project_id = {project_id:UInt64}
      AND timestamp >= {start:DateTime64(6, 'UTC')}
      AND timestamp < {end:DateTime64(6, 'UTC')}
      AND session_id != ''
      AND /*filters*/
    GROUP BY session_id
    )
)
GROUP BY bucket
ORDER BY bucket

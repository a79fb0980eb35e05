-- The first and last minute of a project's rollups (event_counts_1m); NULL when the Flink job wrote none yet.
SELECT minOrNull(minute) AS first, maxOrNull(minute) AS last FROM event_counts_1m
WHERE project_id = {project_id:UInt64}

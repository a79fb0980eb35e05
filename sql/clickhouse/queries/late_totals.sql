-- Events of one name per bucket (project time zone) that the Flink job's minute counts missed: they came
-- later than FLINK_LATENESS_SECONDS and are in late_events instead (each uuid once). The bucket fragment
-- is filled in by workers/query/trends_rollups.py; values are {parameters}.
SELECT /*bucket*/ AS bucket, uniqExact(uuid) AS events
FROM late_events
WHERE project_id = {project_id:UInt64}
  AND event = {event:String}
  AND timestamp >= {start:DateTime64(6, 'UTC')}
  AND timestamp < {end:DateTime64(6, 'UTC')}
GROUP BY bucket

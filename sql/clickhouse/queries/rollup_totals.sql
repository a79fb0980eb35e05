-- Events of one name per bucket from the Flink job's rollups (sql/clickhouse/006_sessions_rollups.sql): each
-- minute's count once (maxMap over minute -> count, so a minute stored twice counts once). The table
-- (event_counts_1h by UTC hour, or event_counts_1d by the project's local day), the bucket and the span
-- fragments are filled in by workers/query/trends_rollups.py; values are {parameters}.
SELECT /*bucket*/ AS bucket, arraySum(maxMapMerge(counts).2) AS events
FROM /*rollup*/
WHERE project_id = {project_id:UInt64}
  AND event = {event:String}
  AND /*span*/
GROUP BY bucket
ORDER BY bucket

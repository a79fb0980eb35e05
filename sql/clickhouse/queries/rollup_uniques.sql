-- Distinct persons of one event per bucket from the Flink job's rollups: their sets of (distinct id, person
-- id) pairs plus the late events, each distinct id's person after merges as trends counts it (the person and persons
-- fragments are person.sql and person_overrides.sql). The rollup, bucket, late_bucket and span fragments are filled in by
-- workers/query/trends_rollups.py; values are {parameters}.
SELECT e.bucket AS bucket,
       uniqExact(/*person*/) AS persons
FROM
(
    SELECT bucket, actor.1 AS distinct_id, actor.2 AS person_id
    FROM
    (
        SELECT /*bucket*/ AS bucket, groupUniqArrayArrayMerge(actors) AS bucket_actors
        FROM /*rollup*/
        WHERE project_id = {project_id:UInt64}
          AND event = {event:String}
          AND /*span*/
        GROUP BY bucket
    )
    ARRAY JOIN bucket_actors AS actor
    UNION ALL
    SELECT /*late_bucket*/ AS bucket, distinct_id, person_id
    FROM late_events
    WHERE project_id = {project_id:UInt64}
      AND event = {event:String}
      AND timestamp >= {start:DateTime64(6, 'UTC')}
      AND timestamp < {end:DateTime64(6, 'UTC')}
) AS e
/*persons*/
GROUP BY bucket

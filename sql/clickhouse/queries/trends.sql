-- Trends for one event (or any event): per bucket (project time zone) and breakdown value, the events,
-- The distinct persons after merges, and the sum and average of a numeric property. The marked fragments
-- (bucket, event, filters, breakdown, persons) are filled in by workers/trends.py from fixed SQL; every
-- value is a bound {parameter}. The persons fragment (persons_join.sql) joins the persons' current
-- properties only when a filter or the breakdown needs them.
SELECT
    /*bucket*/ AS bucket,
    breakdown_value,
    count() AS events,
    uniqExact(person) AS persons,
    sumIf(value, has_value) AS property_sum,
    avgIf(value, has_value) AS property_avg
FROM
(
    SELECT
        timestamp,
        /*breakdown*/ AS breakdown_value,
        person,
        JSONExtractFloat(properties, {property:String}) AS value,
        JSONHas(properties, {property:String}) AS has_value
    FROM
    (
        SELECT
            e.timestamp AS timestamp,
            e.properties AS properties,
            if(p.person_id = toUUID('00000000-0000-0000-0000-000000000000'), e.person_id, p.person_id) AS person
        FROM
        (
            SELECT timestamp, distinct_id, person_id, properties
            FROM events FINAL
            WHERE project_id = {project_id:UInt64}
              AND /*event*/
              AND timestamp >= {start:DateTime64(6, 'UTC')}
              AND timestamp < {end:DateTime64(6, 'UTC')}
        ) AS e
        LEFT JOIN
        (
            SELECT distinct_id, argMax(person_id, version) AS person_id
            FROM person_distinct_ids
            WHERE project_id = {project_id:UInt64}
            GROUP BY distinct_id
        ) AS p ON p.distinct_id = e.distinct_id
    ) AS ev
    /*persons*/
    WHERE /*filters*/
)
GROUP BY bucket, breakdown_value
ORDER BY bucket

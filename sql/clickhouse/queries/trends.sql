-- Trends for one event: per bucket (in the project's time zone) the events, the distinct persons after
-- merges, and the sum and average of a numeric property. `/*bucket*/` and `/*filters*/` are filled in
-- by workers/trends.py from fixed fragments; every value is a bound {parameter}.
SELECT
    /*bucket*/ AS bucket,
    count() AS events,
    uniqExact(person) AS persons,
    sumIf(value, has_value) AS property_sum,
    avgIf(value, has_value) AS property_avg
FROM
(
    SELECT
        e.timestamp AS timestamp,
        if(p.person_id = toUUID('00000000-0000-0000-0000-000000000000'), e.person_id, p.person_id) AS person,
        JSONExtractFloat(e.properties, {property:String}) AS value,
        JSONHas(e.properties, {property:String}) AS has_value
    FROM
    (
        SELECT timestamp, distinct_id, person_id, properties
        FROM events FINAL
        WHERE project_id = {project_id:UInt64}
          AND event = {event:String}
          AND timestamp >= {start:DateTime64(6, 'UTC')}
          AND timestamp < {end:DateTime64(6, 'UTC')}
          AND /*filters*/
    ) AS e
    LEFT JOIN
    (
        SELECT distinct_id, argMax(person_id, version) AS person_id
        FROM person_distinct_ids
        WHERE project_id = {project_id:UInt64}
        GROUP BY distinct_id
    ) AS p ON p.distinct_id = e.distinct_id
)
GROUP BY bucket
ORDER BY bucket

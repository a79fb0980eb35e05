-- Frequency: persons (after merges) bucketed by how many times they did the event in the whole range,
-- 1..9 and 10+. The event fragment and the filters fragment are filled in by workers/trends.py; values are {parameters}.
SELECT least(times, 10) AS times, count() AS persons
FROM
(
    SELECT person, count() AS times
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
    GROUP BY person
)
GROUP BY times
ORDER BY times

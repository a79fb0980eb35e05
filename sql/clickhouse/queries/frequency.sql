-- Frequency: persons (after merges) bucketed by how many times they did the event in the whole range
-- (distinct uuids: a redelivered event counts once), 1..9 and 10+. The event, filters, hot, persons and
-- person_properties fragments are filled in by workers/trends.py; values are {parameters}.
SELECT least(times, 10) AS times, count() AS persons
FROM
(
    SELECT person, uniqExact(uuid) AS times
    FROM
    (
        SELECT e.*, if(p.person_id = toUUID('00000000-0000-0000-0000-000000000000'), e.person_id, p.person_id) AS person
        FROM
        (
            SELECT timestamp, uuid, distinct_id, person_id, properties, /*hot*/
            FROM events
            WHERE project_id = {project_id:UInt64}
              AND /*event*/
              AND timestamp >= {start:DateTime64(6, 'UTC')}
              AND timestamp < {end:DateTime64(6, 'UTC')}
        ) AS e
        /*persons*/
    ) AS ev
    /*person_properties*/
    WHERE /*filters*/
    GROUP BY person
)
GROUP BY times
ORDER BY times

-- The persons (after merges: person.sql, person_overrides.sql) who did an event at least {min} times
-- (distinct uuids: each event once) in [{since}, {computed_at}]. The key mark names one filter's
-- parameters.
SELECT person
FROM
(
    SELECT e.uuid AS uuid, /*person*/ AS person
    FROM
    (
        SELECT uuid, distinct_id, person_id
        FROM events
        WHERE project_id = {project_id:UInt64}
          AND event = {/*key*/_event:String}
          AND timestamp >= {/*key*/_since:DateTime64(6, 'UTC')}
          AND timestamp <= {computed_at:DateTime64(6, 'UTC')}
    ) AS e
    /*persons*/
)
GROUP BY person
HAVING uniqExact(uuid) >= {/*key*/_min:UInt64}

-- Retention: each person's cohort is the period (day or ISO week, in the project's time zone) of their
-- first start event in the range; for each later period, the persons of the cohort who did the return
-- event in it. Persons after merges, each event once. The period fragment and the return_event fragment are filled in
-- by workers/retention.py; values are {parameters}. One row per (cohort, period); period = cohort gives
-- The cohort's size.
SELECT toString(s.cohort) AS cohort, toString(r.period) AS period, uniqExact(s.person) AS persons
FROM
(
    SELECT person, min(/*period*/) AS cohort
    FROM
    (
        SELECT
            e.timestamp AS timestamp,
            if(p.person_id = toUUID('00000000-0000-0000-0000-000000000000'), e.person_id, p.person_id) AS person
        FROM
        (
            SELECT timestamp, distinct_id, person_id FROM events FINAL
            WHERE project_id = {project_id:UInt64} AND event = {start_event:String}
              AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}
        ) AS e
        LEFT JOIN
        (
            SELECT distinct_id, argMax(person_id, version) AS person_id FROM person_distinct_ids
            WHERE project_id = {project_id:UInt64} GROUP BY distinct_id
        ) AS p ON p.distinct_id = e.distinct_id
    )
    GROUP BY person
) AS s
INNER JOIN
(
    SELECT DISTINCT person, /*period*/ AS period
    FROM
    (
        SELECT
            e.timestamp AS timestamp,
            if(p.person_id = toUUID('00000000-0000-0000-0000-000000000000'), e.person_id, p.person_id) AS person
        FROM
        (
            SELECT timestamp, distinct_id, person_id FROM events FINAL
            WHERE project_id = {project_id:UInt64} AND /*return_event*/
              AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {until:DateTime64(6, 'UTC')}
        ) AS e
        LEFT JOIN
        (
            SELECT distinct_id, argMax(person_id, version) AS person_id FROM person_distinct_ids
            WHERE project_id = {project_id:UInt64} GROUP BY distinct_id
        ) AS p ON p.distinct_id = e.distinct_id
    )
    UNION ALL
    SELECT person, min(/*period*/) AS period
    FROM
    (
        SELECT
            e.timestamp AS timestamp,
            if(p.person_id = toUUID('00000000-0000-0000-0000-000000000000'), e.person_id, p.person_id) AS person
        FROM
        (
            SELECT timestamp, distinct_id, person_id FROM events FINAL
            WHERE project_id = {project_id:UInt64} AND event = {start_event:String}
              AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}
        ) AS e
        LEFT JOIN
        (
            SELECT distinct_id, argMax(person_id, version) AS person_id FROM person_distinct_ids
            WHERE project_id = {project_id:UInt64} GROUP BY distinct_id
        ) AS p ON p.distinct_id = e.distinct_id
    )
    GROUP BY person
) AS r ON r.person = s.person
WHERE r.period >= s.cohort
GROUP BY s.cohort, r.period

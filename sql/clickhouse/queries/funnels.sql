-- Funnel: for each person (after merges) the deepest step reached, ClickHouse windowFunnel semantics:
-- steps in order, each within {window} seconds of step 1, step 1 inside the date range. The steps fragment
-- (one condition per step), first_step and breakdown fragments are filled in by workers/funnels.py; values
-- are {parameters}. With a breakdown, a person counts under the value of their first step-1 event.
SELECT level, breakdown_value, count() AS persons
FROM
(
    SELECT
        person,
        windowFunnel({window:UInt64})(toDateTime(timestamp), /*steps*/) AS level,
        argMinIf(/*breakdown*/, timestamp, /*first_step*/) AS breakdown_value
    FROM
    (
        SELECT
            e.timestamp AS timestamp,
            e.event AS event,
            e.properties AS properties,
            if(p.person_id = toUUID('00000000-0000-0000-0000-000000000000'), e.person_id, p.person_id) AS person
        FROM
        (
            SELECT timestamp, event, distinct_id, person_id, properties
            FROM events FINAL
            WHERE project_id = {project_id:UInt64}
              AND event IN {events:Array(String)}
              AND timestamp >= {start:DateTime64(6, 'UTC')}
              AND timestamp < {last:DateTime64(6, 'UTC')}
        ) AS e
        LEFT JOIN
        (
            SELECT distinct_id, argMax(person_id, version) AS person_id
            FROM person_distinct_ids
            WHERE project_id = {project_id:UInt64}
            GROUP BY distinct_id
        ) AS p ON p.distinct_id = e.distinct_id
    )
    GROUP BY person
)
WHERE level > 0
GROUP BY level, breakdown_value

-- Retention in one pass over the events: per person (after merges, each event once) the cohort = the
-- period (day or ISO week, in the project's time zone) of their first start event in the range, and the
-- periods in which they did the return event (sets of periods: a redelivered event changes nothing). The
-- period, return_event, person and persons fragments are filled in by workers/query/retention.py; values are
-- {parameters}. One row per (cohort, period); period = cohort gives the cohort's size.
SELECT toString(cohort) AS cohort, toString(period) AS period, count() AS persons
FROM
(
    SELECT person, cohort, arrayDistinct(arrayPushFront(returns, cohort)) AS periods
    FROM
    (
        SELECT
            person,
            minIf(period, is_start) AS cohort,
            groupUniqArrayIf(period, is_return) AS returns,
            countIf(is_start) > 0 AS started
        FROM
        (
            SELECT
                /*period*/ AS period,
                e.event = {start_event:String} AND e.timestamp < {end:DateTime64(6, 'UTC')} AS is_start,
                /*return_event*/ AS is_return,
                /*person*/ AS person
            FROM
            (
                SELECT timestamp, event, distinct_id, person_id FROM events
                WHERE project_id = {project_id:UInt64}
                  AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {until:DateTime64(6, 'UTC')}
            ) AS e
            /*persons*/
        )
        GROUP BY person
        HAVING started
    )
)
ARRAY JOIN periods AS period
WHERE period >= cohort
GROUP BY cohort, period

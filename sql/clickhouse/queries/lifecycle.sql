-- Lifecycle for one event, in one pass over its events before the range's end (all of its history: "new"
-- needs each person's first matching event ever). Intervals are numbered from the one holding date_from
-- (0; -1 is the one before it, {intervals:Int64} - 1 the last). Per person (after merges): the number of
-- their first matching interval and the set of those they were active in from -1 on (a set: a redelivered
-- event changes nothing). Each active interval b >= 0 gives one row: new (b is the first), returning
-- (b - 1 active too) or resurrecting; each active b whose next interval is in the range and not active
-- gives a dormant row at b + 1. The person, persons, hot, interval_number, filters and person_properties
-- fragments are filled in by workers/query/lifecycle.py; values are {parameters}.
SELECT row.1 AS status, row.2 AS number, count() AS persons
FROM
(
    SELECT min(number) AS first, groupUniqArrayIf(number, number >= -1) AS active
    FROM
    (
        SELECT
            e.*,
            /*person*/ AS person,
            /*interval_number*/(e.timestamp, {tz:String})
                - /*interval_number*/({start:DateTime64(6, 'UTC')}, {tz:String}) AS number
        FROM
        (
            SELECT timestamp, distinct_id, person_id, properties, /*hot*/
            FROM events
            WHERE project_id = {project_id:UInt64}
              AND event = {event:String}
              AND timestamp < {end:DateTime64(6, 'UTC')}
        ) AS e
        /*persons*/
    ) AS ev
    /*person_properties*/
    WHERE /*filters*/
    GROUP BY person
)
ARRAY JOIN arrayConcat(
    arrayMap(
        b -> (if(b = first, 'new', if(has(active, b - 1), 'returning', 'resurrecting')), b),
        arrayFilter(b -> b >= 0, active)
    ),
    arrayMap(
        b -> ('dormant', b + 1),
        arrayFilter(b -> b + 1 < {intervals:Int64} AND NOT has(active, b + 1), active)
    )
) AS row
GROUP BY status, number

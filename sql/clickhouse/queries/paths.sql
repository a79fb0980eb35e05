-- Paths: each session's events in the range (each uuid once; sessions as in session_events.sql) in time
-- order (ties by the uuid's text), from its first `start_event` (or its first event), cut to {steps}
-- events; every step i -> i+1 is an edge "i_<event>" -> "i+1_<event>", valued by the number of sessions
-- taking it. The start and session_events fragments are filled in by workers/query/paths.py; values are {parameters}.
SELECT concat(toString(i), '_', a) AS source, concat(toString(i + 1), '_', b) AS target, value
FROM
(
    -- the edges' names are made once per edge, not once per session taking it
    SELECT i, path[i] AS a, path[i + 1] AS b, count() AS value
    FROM
    (
        SELECT arraySlice(events, first, {steps:UInt32}) AS path
        FROM
        (
            SELECT
                arrayMap(x -> x.2, arraySort(x -> (x.1, toString(x.3)), groupUniqArray((timestamp, event, uuid)))) AS events,
                /*start*/ AS first
            FROM (/*session_events*/)
            GROUP BY session_id
        )
        WHERE first > 0
    )
    ARRAY JOIN arrayEnumerate(path) AS i
    WHERE i < length(path)
    GROUP BY i, a, b
)
ORDER BY value DESC, source, target
LIMIT {limit:UInt32}

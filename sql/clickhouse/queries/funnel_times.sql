-- Funnel step times: per person (after merges, each event once) the chain that reaches their deepest
-- step, taking step-1 starts in time order and each later step at its earliest event after step 1 within
-- {window} seconds (strictly later, second resolution, as the counts' windowFunnel); then, per step k,
-- the median of (step k - step k-1) over the persons who reached it. The masks fragment (bit k set when
-- an event matches step k) and the first_step fragment are filled in by workers/funnels.py.
SELECT step, quantileExactInclusive(0.5)(seconds) AS median_seconds
FROM
(
    SELECT arrayJoin(arrayMap(k -> (k + 1, chain[k + 1] - chain[k]), range(1, length(chain)))) AS pair,
           pair.1 AS step, pair.2 AS seconds
    FROM
    (
        SELECT
            arraySort(x -> (x.1, x.2), groupArray((toUInt32(toDateTime(timestamp)), masks, first))) AS evs,
            arrayMap(x -> x.1, evs) AS ts,
            arrayMap(x -> x.2, evs) AS ms,
            arrayMap(s -> arrayFold(
                (acc, t, m) -> if(acc.1 < {steps:UInt8} AND t > acc.2 AND t - acc.2 <= {window:UInt64}
                                  AND bitTest(m, acc.1), (toUInt8(acc.1 + 1), acc.2, arrayPushBack(acc.3, t)), acc),
                arraySlice(ts, s.1 + 1, s.2), arraySlice(ms, s.1 + 1, s.2),
                (toUInt8(1), ts[s.1], [ts[s.1]])),
                -- each start with how many of the following events fall inside its window
                arrayMap(i -> (i, arrayCount(t -> t <= ts[i] + {window:UInt64}, ts) - i),
                         arrayFilter(i -> evs[i].3, arrayEnumerate(evs)))) AS chains,
            arrayFirst(c -> c.1 = arrayMax(arrayMap(c -> c.1, chains)), chains).3 AS chain
        FROM
        (
            SELECT
                e.timestamp AS timestamp,
                /*masks*/ AS masks,
                /*first_step*/ AS first,
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
        HAVING length(chains) > 0
    )
)
GROUP BY step
ORDER BY step

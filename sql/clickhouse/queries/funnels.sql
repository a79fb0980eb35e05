-- Funnel: per person (after merges), the deepest step reached and the times of the chain that reached it.
-- ClickHouse windowFunnel semantics, second resolution: events in time order (ties in step order); from a
-- step-1 event inside the date range (a start), each later step is taken at its earliest event after the
-- previous step's, strictly later than the start and at most {window} seconds after it. A person's level
-- is the deepest over all their starts; their chain is the first start (in time order) reaching it.
-- Each event is packed as (second << 20) | masks (bit k set when it matches step k + 1), so one numeric
-- sort orders a person's events; a duplicated event (same uuid) changes neither levels nor times.
-- Fragments filled in by workers/query/funnels.py: step_events (step_events.sql once per event name, UNION
-- ALL: each reads only its event's rows, and the properties only where a step filters or breaks down),
-- the per-step `next` arrays and `chains`, levels and pairs, person and persons (person.sql,
-- person_overrides.sql); values are {parameters}. Each layer reads the one below as columns, which keeps
-- the query tree small with 20 steps. One statement gives the counts per (level, breakdown value)
-- and the median seconds from the previous step, overall and (with a breakdown, whose value is the
-- person's first start's) per breakdown value: grouping sets.
SELECT
    grouping(level, breakdown_value, step) AS grouped,
    level,
    breakdown_value,
    step,
    countIf(step = 1) AS persons,
    quantileExactInclusive(0.5)(seconds) AS median_seconds
FROM
(
    SELECT level, breakdown_value, pair.1 AS step, pair.2 AS seconds
    FROM
    (
        SELECT
            breakdown_value,
            arrayMax(levels) AS level,
            chains[indexOf(levels, level)] AS chain,
            arraySlice([/*pairs*/], 1, level) AS pairs
        FROM
        (
            SELECT breakdown_value, ts, /*chains*/, arrayMap(c -> /*levels*/, chains) AS levels
            FROM
            (
                SELECT
                    breakdown_value,
                    evs,
                    arrayMap(x -> bitShiftRight(x, 20), evs) AS ts,
                    arrayEnumerate(evs) AS idx,
                    -- later[x]: the first index >= x whose second is after the one before it (0: none)
                    arrayReverseFill(x -> x > 0, arrayMap((i, d) -> if(i = 1 OR d > 0, i, 0), idx, arrayDifference(ts))) AS later,
                    /*next*/
                FROM
                (
                    SELECT
                        arraySort(groupArray(bitShiftLeft(toUInt64(toUInt32(toDateTime(timestamp))), 20) + masks)) AS evs,
                        argMinIf(row_breakdown, timestamp, bitTest(masks, 0)) AS breakdown_value
                    FROM
                    (
                        SELECT
                            e.*,
                            /*person*/ AS person
                        FROM
                        (
                            /*step_events*/
                        ) AS e
                        /*persons*/
                    )
                    GROUP BY person
                    HAVING countIf(bitTest(masks, 0)) > 0
                )
            )
        )
    )
    ARRAY JOIN pairs AS pair
)
GROUP BY GROUPING SETS ((level, breakdown_value), /*breakdown_steps*/ (step))

-- Funnel: per person (after merges), the deepest step reached over their non-excluded starts and the times
-- of the chain that reached it (see the README's funnels entry for the exact definitions).
-- Each event is packed as (second << 20) | masks (bit k set when it matches step k + 1), so one numeric
-- sort orders a person's events (ties within a second by their masks); a duplicated event (same uuid)
-- changes neither levels nor times (where it could, funnels.py keeps one row per uuid). A start is an event taking step
-- 1 (unordered: any step) before {end_second}. Each start's chain is a tuple of n event indexes (0 from the
-- first step not reached), built by the `chains` fragment of its order mode; a chain an exclusion hits
-- counts as level 0.
-- Fragments filled in by workers/query/funnels.py: step_events (step_events.sql once per event name, UNION
-- ALL: each reads only its event's rows, and the properties only where a step filters or breaks down),
-- person and persons (person.sql, person_overrides.sql), the events' array `evs` (event-side masks),
-- has_start, the exclusions' times, the breakdown value (person_value: person_computed_join.sql joins a person
-- breakdown's value, computed once per person, to the rows), then per person (`g`, one row each): person_evs (the
-- events with the bits of the steps whose person-side filters the person fails cleared, and those left
-- with none dropped; strict order keeps them: person_properties (person_computed_join.sql) joins each
-- property condition, computed once per person, and a cohort filter is a lookup of the person
-- (cohort_has_person.sql)), person_breakdown and person_excluded; then the per-step `next` arrays, `chains`,
-- `excluded`, levels and pairs (with the histogram's (0, seconds) pair), and breakdown_join (a cohort
-- breakdown: each person's array of values, 0 and their cohorts, one row each); values are {parameters}.
-- Each layer reads the one below as columns, which keeps the query tree small with 20 steps. One statement
-- gives the counts per (level, breakdown value), the median seconds from the previous step overall and
-- per breakdown value (grouping sets), and the histogram (step 0) with its bins.
SELECT
    grouped, level, breakdown_value, step, persons, median_seconds, average_seconds,
    arrayMin(durations) AS low,
    intDiv(arrayMax(durations) - low + {bins:UInt64}, {bins:UInt64}) AS width,
    arrayMap(h -> intDiv(h - low, width), durations) AS bin_of,
    if(step = 0, arrayMap(b -> countEqual(bin_of, b), range({bins:UInt64})), []) AS bin_counts
FROM
(
    SELECT
        grouping(level, breakdown_value, step) AS grouped,
        level,
        breakdown_value,
        step,
        countIf(step = 1) AS persons,
        quantileExactInclusive(0.5)(seconds) AS median_seconds,
        avgIf(seconds, step = 0) AS average_seconds,
        groupArrayIf(seconds, step = 0) AS durations
    FROM
    (
        SELECT level, breakdown_value, pair.1 AS step, pair.2 AS seconds
        FROM
        (
            SELECT
                breakdown_value,
                arrayMax(levels) AS level,
                chains[indexOf(levels, level)] AS chain,
                arrayConcat(arraySlice([/*pairs*/], 1, level), /*histogram*/) AS pairs
            FROM
            (
                SELECT breakdown_value, ts, /*chains*/,
                       arrayMap(c -> if(/*excluded*/, 0, /*levels*/), chains) AS levels
                FROM
                (
                    SELECT
                        *,
                        arrayMap(x -> bitShiftRight(x, 20), evs) AS ts,
                        arrayEnumerate(evs) AS idx,
                        -- later[x]: the first index >= x whose second is after the one before it (0: none)
                        arrayReverseFill(x -> x > 0, arrayMap((i, d) -> if(i = 1 OR d > 0, i, 0), idx, arrayDifference(ts))) AS later,
                        /*next*/
                    FROM
                    (
                        SELECT
                            /*person_evs*/ AS evs,
                            /*person_breakdown*/ AS breakdown_value/*person_excluded*/
                        FROM
                        (
                            SELECT
                                person,
                                /*evs*/ AS person_events,
                                /*breakdown_value*/ AS event_breakdown/*excluded_times*/
                            FROM
                            (
                                SELECT e.*, /*person*/ AS person
                                FROM
                                (
                                    /*step_events*/
                                ) AS e
                                /*persons*/
                            ) AS ev
                            /*person_value*/
                            GROUP BY person
                            HAVING /*has_start*/
                        ) AS g
                        /*person_properties*/
                    )
                )
            )
            WHERE level > 0
        )
        /*breakdown_join*/
        ARRAY JOIN pairs AS pair
    )
    GROUP BY GROUPING SETS ((level, breakdown_value), /*breakdown_steps*/ (step))
)

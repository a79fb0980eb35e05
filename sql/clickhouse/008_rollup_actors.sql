-- The minute counts and their rollups again, now keeping each counted event's distinct id beside its person
-- id, so that distinct persons are counted after merges (a distinct id merged into another person since)
-- as trends' uniques are: the rollups hold the set of (distinct id, person id) pairs, not of person ids.
-- Their rows are the Flink job's output: to fill them again, run the job over `events` once more (README).
DROP TABLE IF EXISTS event_counts_1d_mv;
DROP TABLE IF EXISTS event_counts_1h_mv;
DROP TABLE IF EXISTS event_counts_1d;
DROP TABLE IF EXISTS event_counts_1h;
DROP TABLE IF EXISTS event_counts_1m;

-- One row per (project, event, UTC minute); persons[i] is the person of distinct_ids[i] when the event
-- was counted; local_day is the minute's day in the project's time zone.
CREATE TABLE IF NOT EXISTS event_counts_1m
(
    project_id    UInt64,
    event         String,
    minute        DateTime('UTC'),
    count         UInt64,
    distinct_ids  Array(String),
    persons       Array(UUID),
    local_day     Date
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (project_id, event, minute);

-- The hour and day rollups stay exact when a minute row is inserted twice (a writer redelivery, a job
-- restore): counts is a map minute -> count merged with max, actors a set of (distinct id, person id).
-- Read them with arraySum(maxMapMerge(counts).2) and groupUniqArrayArrayMerge(actors). An hour is a UTC
-- hour; local_day is in the key because an hour straddles two local days in a half-hour zone.
CREATE TABLE IF NOT EXISTS event_counts_1h
(
    project_id  UInt64,
    event       String,
    hour        DateTime('UTC'),
    local_day   Date,
    counts      AggregateFunction(maxMap, Array(UInt32), Array(UInt64)),
    actors      AggregateFunction(groupUniqArrayArray, Array(Tuple(String, UUID)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, event, hour, local_day);

CREATE MATERIALIZED VIEW IF NOT EXISTS event_counts_1h_mv TO event_counts_1h AS
SELECT project_id, event, toStartOfHour(minute) AS hour, local_day,
       maxMapState([toUInt32(minute)], [count]) AS counts,
       groupUniqArrayArrayState(arrayZip(distinct_ids, persons)) AS actors
FROM event_counts_1m
GROUP BY project_id, event, hour, local_day;

CREATE TABLE IF NOT EXISTS event_counts_1d
(
    project_id  UInt64,
    event       String,
    local_day   Date,
    counts      AggregateFunction(maxMap, Array(UInt32), Array(UInt64)),
    actors      AggregateFunction(groupUniqArrayArray, Array(Tuple(String, UUID)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(local_day)
ORDER BY (project_id, event, local_day);

CREATE MATERIALIZED VIEW IF NOT EXISTS event_counts_1d_mv TO event_counts_1d AS
SELECT project_id, event, local_day, maxMapMergeState(counts) AS counts,
       groupUniqArrayArrayMergeState(actors) AS actors
FROM event_counts_1h
GROUP BY project_id, event, local_day;

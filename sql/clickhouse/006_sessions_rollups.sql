-- The Flink job's outputs (flink/job.py), stored by the writer.
-- A replayed session has the same sort key and is merged away; a session id that fires again after a gap
-- (one long explicit $session_id) is another row: read sessions_merged, which folds them into one.
CREATE TABLE IF NOT EXISTS sessions
(
    session_id      String,
    kind            LowCardinality(String),
    project_id      UInt64,
    person_id       UUID,
    distinct_id     String,
    start           DateTime64(3, 'UTC'),
    `end`           DateTime64(3, 'UTC'),
    duration_seconds Float64,
    event_count     UInt64,
    pageview_count  UInt64,
    entry_url       String,
    exit_url        String,
    bounced         UInt8,
    browser         String,
    os              String,
    device_type     String,
    country         String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(start)
ORDER BY (project_id, session_id, start);

-- the row columns are renamed first so that the min/max aliases never shadow them inside argMin/argMax
CREATE VIEW IF NOT EXISTS sessions_merged AS
SELECT
    project_id,
    session_id,
    any(row_kind) AS kind,
    argMin(row_person_id, row_start) AS person_id,
    argMin(row_distinct_id, row_start) AS distinct_id,
    min(row_start) AS start,
    max(row_end) AS `end`,
    dateDiff('millisecond', start, `end`) / 1000 AS duration_seconds,
    sum(row_event_count) AS event_count,
    sum(row_pageview_count) AS pageview_count,
    argMin(row_entry_url, row_start) AS entry_url,
    argMax(row_exit_url, row_end) AS exit_url,
    event_count = 1 AS bounced,
    argMin(row_browser, row_start) AS browser,
    argMin(row_os, row_start) AS os,
    argMin(row_device_type, row_start) AS device_type,
    argMin(row_country, row_start) AS country
FROM
(
    SELECT project_id, session_id, kind AS row_kind, person_id AS row_person_id,
           distinct_id AS row_distinct_id, start AS row_start, `end` AS row_end,
           event_count AS row_event_count, pageview_count AS row_pageview_count, entry_url AS row_entry_url,
           exit_url AS row_exit_url, browser AS row_browser, os AS row_os, device_type AS row_device_type,
           country AS row_country
    FROM sessions FINAL
)
GROUP BY project_id, session_id;

-- event_counts_1m and its hour and day rollups: 008_rollup_actors.sql (it replaced this file's first ones).

-- Events the job's minute counts missed (they came later than FLINK_LATENESS_SECONDS); stored once per uuid.
CREATE TABLE IF NOT EXISTS late_events
(
    uuid             UUID,
    project_id       UInt64,
    event            String,
    distinct_id      String,
    person_id        UUID,
    timestamp        DateTime64(6, 'UTC'),
    kafka_partition  UInt32,
    kafka_offset     UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, uuid);

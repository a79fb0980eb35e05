-- issue 10: capture's heartbeats as the writer stored them (one per events_raw partition every
-- HEARTBEAT_SECONDS), and capture's accepted events per project and hour: each capture process's running
-- total, the highest kept, so a redelivered or repeated row never counts twice.
CREATE TABLE IF NOT EXISTS heartbeats
(
    source       String,
    partition    UInt32,
    sent_at      DateTime64(6, 'UTC'),
    inserted_at  DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (partition, sent_at)
TTL toDateTime(sent_at) + INTERVAL 7 DAY;

CREATE TABLE IF NOT EXISTS accepted_counts
(
    project_id  UInt64,
    hour        DateTime('UTC'),
    source      String,
    count       UInt64,
    updated_at  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(count)
ORDER BY (project_id, hour, source)

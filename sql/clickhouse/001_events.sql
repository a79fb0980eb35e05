-- One row per event; a redelivered event has the same sort key (uuid included) and is merged away.
CREATE TABLE IF NOT EXISTS events
(
    uuid         UUID,
    project_id   UInt64,
    event        String,
    distinct_id  String,
    person_id    UUID,
    timestamp    DateTime64(6, 'UTC'),
    properties   String CODEC(ZSTD(3)),
    set          String,
    set_once     String,
    ip           String,
    lib          LowCardinality(String),
    sent_at      Nullable(DateTime64(6, 'UTC')),
    received_at  DateTime64(6, 'UTC'),
    inserted_at  DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toDate(timestamp), event, cityHash64(distinct_id), uuid)

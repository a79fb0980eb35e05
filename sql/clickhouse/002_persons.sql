-- Persons and their distinct ids as the persons worker last wrote them: the row with the highest version
-- wins (FINAL, or argMax(..., version)), so a redelivered or older change never overrides a newer one.
ALTER TABLE events ADD COLUMN IF NOT EXISTS person_properties String CODEC(ZSTD(3)) AFTER person_id;

CREATE TABLE IF NOT EXISTS persons
(
    id             UUID,
    project_id     UInt64,
    properties     String CODEC(ZSTD(3)),
    is_identified  UInt8,
    created_at     DateTime64(6, 'UTC'),
    version        UInt64,
    is_deleted     UInt8,
    inserted_at    DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, id);

CREATE TABLE IF NOT EXISTS person_distinct_ids
(
    project_id   UInt64,
    distinct_id  String,
    person_id    UUID,
    version      UInt64,
    is_deleted   UInt8,
    inserted_at  DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, distinct_id);

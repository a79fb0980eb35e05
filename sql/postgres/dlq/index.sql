-- One consumed batch of dead letters. A message carrying replay_of is a replayed one parked again: it
-- updates its row. Any other is a new row, and a redelivered one (same source and stage) changes nothing.
-- A replay_of naming no row (the index was reset) is kept as a new row rather than lost.
WITH incoming AS (
    SELECT *
    FROM unnest(
        $1::bigint[], $2::text[], $3::integer[], $4::bigint[], $5::text[], $6::text[], $7::text[],
        $8::bytea[], $9::bytea[], $10::text[], $11::text[], $12::timestamptz[], $13::integer[], $14::text[]
    ) AS i (replay_of, source_topic, source_partition, source_offset, stage, reason, error,
            key, value, headers, uuid, seen, attempts, state)
), replayed AS (
    UPDATE dead_letters d
    SET reason = i.reason, error = i.error, headers = i.headers::jsonb, last_seen = i.seen,
        attempts = i.attempts, state = i.state
    FROM incoming i
    WHERE d.id = i.replay_of
    RETURNING d.id
)
INSERT INTO dead_letters (source_topic, source_partition, source_offset, stage, reason, error, key, value,
                          headers, uuid, first_seen, last_seen, attempts, state)
SELECT source_topic, source_partition, source_offset, stage, reason, error, key, value,
       headers::jsonb, uuid, seen, seen, attempts, state
FROM incoming
WHERE replay_of IS NULL OR replay_of NOT IN (SELECT id FROM replayed)
ON CONFLICT (source_topic, source_partition, source_offset, stage) DO NOTHING

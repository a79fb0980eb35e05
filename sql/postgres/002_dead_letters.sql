-- The dlq worker's index of the messages parked in the `dead_letter` topic: one row per message a stage
-- parked, found again by where it came from. A replayed message that is parked again updates its row.
CREATE TABLE IF NOT EXISTS dead_letters (
    id                bigserial PRIMARY KEY,
    source_topic      text NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    stage             text NOT NULL,
    reason            text NOT NULL,
    error             text NOT NULL,
    key               bytea,
    value             bytea NOT NULL,
    headers           jsonb NOT NULL,   -- the dead letter's headers as received, values as UTF-8 text
    uuid              text,             -- the event's `uuid` when the value is a JSON object holding one
    first_seen        timestamptz NOT NULL,
    last_seen         timestamptz NOT NULL,
    attempts          integer NOT NULL,
    state             text NOT NULL CHECK (state IN ('parked', 'replayed', 'dead')),
    UNIQUE (source_topic, source_partition, source_offset, stage)
);
CREATE INDEX IF NOT EXISTS dead_letters_state_idx ON dead_letters (state, id);
CREATE INDEX IF NOT EXISTS dead_letters_reason_idx ON dead_letters (reason, last_seen);
CREATE INDEX IF NOT EXISTS dead_letters_stage_idx ON dead_letters (stage, last_seen);
CREATE INDEX IF NOT EXISTS dead_letters_last_seen_idx ON dead_letters (last_seen);

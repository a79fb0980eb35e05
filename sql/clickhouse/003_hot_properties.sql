-- Hot properties as materialized columns: computed once at insert instead of parsing JSON per query.
ALTER TABLE events ADD COLUMN IF NOT EXISTS session_id String MATERIALIZED JSONExtractString(properties, '$session_id');

-- The SDK protocol an event came in by (posthog, amplitude): an Amplitude session id is only a session id
-- together with its device, so the query API needs it to find an event's session (queries/session_events.sql).
ALTER TABLE events ADD COLUMN IF NOT EXISTS protocol LowCardinality(String) DEFAULT '';

-- issue 10: limits. A project's own capture rate limits; NULL = the CAPTURE_* default from the environment.
ALTER TABLE projects
    ADD COLUMN IF NOT EXISTS events_per_second double precision CHECK (events_per_second > 0),
    ADD COLUMN IF NOT EXISTS events_burst integer CHECK (events_burst > 0),
    ADD COLUMN IF NOT EXISTS distinct_id_events_per_second double precision
        CHECK (distinct_id_events_per_second > 0),
    ADD COLUMN IF NOT EXISTS distinct_id_burst integer CHECK (distinct_id_burst > 0);

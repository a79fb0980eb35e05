-- issue 12: cohorts. A static cohort's distinct ids are a table of their own; a dynamic cohort's
-- definition ({match, filters}) is jsonb. `version` is the last completed computation: ClickHouse's
-- cohort_people holds the members of that version, and readers bind it from here. `refreshing_since`
-- claims a scheduled recomputation so several query processes do not duplicate it.
CREATE TABLE IF NOT EXISTS cohorts (
    id                bigserial PRIMARY KEY,
    project_id        bigint NOT NULL REFERENCES projects(id),
    name              text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    kind              text NOT NULL CHECK (kind IN ('static', 'dynamic')),
    definition        jsonb,
    version           bigint NOT NULL DEFAULT 0,
    count             bigint NOT NULL DEFAULT 0,
    unmatched         bigint NOT NULL DEFAULT 0,
    computed_at       timestamptz,
    refreshing_since  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cohorts_project_idx ON cohorts (project_id, id);
CREATE INDEX IF NOT EXISTS cohorts_dynamic_computed_idx ON cohorts (computed_at) WHERE kind = 'dynamic';

CREATE TABLE IF NOT EXISTS cohort_distinct_ids (
    cohort_id    bigint NOT NULL REFERENCES cohorts(id) ON DELETE CASCADE,
    distinct_id  text NOT NULL,
    PRIMARY KEY (cohort_id, distinct_id)
);

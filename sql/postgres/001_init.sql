-- Projects, persons and their distinct ids, enrichment config.
CREATE TABLE IF NOT EXISTS projects (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    api_token   text NOT NULL UNIQUE,   -- public capture token the SDKs send
    api_key     text NOT NULL UNIQUE,   -- secret key for the query API
    timezone    text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS persons (
    id             uuid PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES projects(id),
    properties     jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_identified  boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    version        bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS persons_project_idx ON persons (project_id);

-- One row per (project, distinct id): the unique key is what stops two workers from creating two persons
-- for one id.
CREATE TABLE IF NOT EXISTS person_distinct_ids (
    project_id   bigint NOT NULL REFERENCES projects(id),
    distinct_id  text NOT NULL,
    person_id    uuid NOT NULL REFERENCES persons(id),
    version      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, distinct_id)
);
CREATE INDEX IF NOT EXISTS person_distinct_ids_person_idx ON person_distinct_ids (person_id);

CREATE TABLE IF NOT EXISTS event_schemas (
    project_id   bigint NOT NULL REFERENCES projects(id),
    event        text NOT NULL,
    json_schema  jsonb NOT NULL,
    PRIMARY KEY (project_id, event)
);

CREATE TABLE IF NOT EXISTS blocked_events (
    project_id   bigint NOT NULL REFERENCES projects(id),
    event        text NOT NULL,
    PRIMARY KEY (project_id, event)
);

-- issue 11: the web app's saved insights (a trends, funnels, retention, sessions or paths request) and
-- dashboards of them. A tile goes with its dashboard and with its insight.
CREATE TABLE IF NOT EXISTS insights (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects(id),
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('trends', 'funnels', 'retention', 'sessions', 'paths')),
    query       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS insights_project_idx ON insights (project_id, updated_at DESC);

CREATE TABLE IF NOT EXISTS dashboards (
    id               bigserial PRIMARY KEY,
    project_id       bigint NOT NULL REFERENCES projects(id),
    name             text NOT NULL,
    refresh_seconds  integer NOT NULL DEFAULT 300
                     CHECK (refresh_seconds = 0 OR refresh_seconds BETWEEN 10 AND 86400),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dashboards_project_idx ON dashboards (project_id, updated_at DESC);

CREATE TABLE IF NOT EXISTS dashboard_tiles (
    dashboard_id  bigint NOT NULL REFERENCES dashboards(id) ON DELETE CASCADE,
    position      integer NOT NULL,
    insight_id    bigint NOT NULL REFERENCES insights(id) ON DELETE CASCADE,
    PRIMARY KEY (dashboard_id, position)
);
CREATE INDEX IF NOT EXISTS dashboard_tiles_insight_idx ON dashboard_tiles (insight_id);

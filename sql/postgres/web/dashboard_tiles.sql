-- The tiles of these dashboards, in order, each with its insight.
SELECT t.dashboard_id, i.id, i.name, i.kind, i.query::text AS query, i.created_at, i.updated_at
FROM dashboard_tiles t JOIN insights i ON i.id = t.insight_id
WHERE t.dashboard_id = ANY($1)
ORDER BY t.dashboard_id, t.position

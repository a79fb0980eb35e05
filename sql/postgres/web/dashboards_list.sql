-- The project's dashboards ($2: this one only; NULL: all), newest updated first.
SELECT id, name, refresh_seconds, created_at, updated_at
FROM dashboards
WHERE project_id = $1 AND ($2::bigint IS NULL OR id = $2)
ORDER BY updated_at DESC, id DESC

-- PATCH: $3 (name) and $4 (refresh_seconds) when given (NULL: unchanged); tiles are written apart.
UPDATE dashboards
SET name = coalesce($3, name), refresh_seconds = coalesce($4, refresh_seconds), updated_at = now()
WHERE project_id = $1 AND id = $2
RETURNING id

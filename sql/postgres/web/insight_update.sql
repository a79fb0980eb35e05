-- PATCH: $3 (name) and $4 (query) when given (NULL: unchanged).
UPDATE insights
SET name = coalesce($3, name), query = coalesce($4::jsonb, query), updated_at = now()
WHERE project_id = $1 AND id = $2
RETURNING id, name, kind, query::text AS query, created_at, updated_at

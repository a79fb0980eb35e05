-- The project's insights ($2: these ids only; NULL: all), newest updated first.
SELECT id, name, kind, query::text AS query, created_at, updated_at
FROM insights
WHERE project_id = $1 AND ($2::bigint[] IS NULL OR id = ANY($2))
ORDER BY updated_at DESC, id DESC

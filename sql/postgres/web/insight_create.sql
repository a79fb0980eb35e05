INSERT INTO insights (project_id, name, kind, query)
VALUES ($1, $2, $3, $4::jsonb)
RETURNING id, name, kind, query::text AS query, created_at, updated_at

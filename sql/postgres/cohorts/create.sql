INSERT INTO cohorts (project_id, name, kind, definition)
VALUES ($1, $2, $3, $4::jsonb)
RETURNING id

INSERT INTO dashboards (project_id, name, refresh_seconds)
VALUES ($1, $2, $3)
RETURNING id

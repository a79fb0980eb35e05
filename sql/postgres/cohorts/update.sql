-- A cohort's name and definition (NULL: unchanged); the id of the row when it is the project's.
UPDATE cohorts
SET name = coalesce($3, name), definition = coalesce($4::jsonb, definition), updated_at = now()
WHERE project_id = $1 AND id = $2
RETURNING id

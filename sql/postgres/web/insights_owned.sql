-- Which of these ids are insights of the project (for tiles).
SELECT id FROM insights WHERE project_id = $1 AND id = ANY($2::bigint[])

DELETE FROM cohorts WHERE project_id = $1 AND id = $2 RETURNING id

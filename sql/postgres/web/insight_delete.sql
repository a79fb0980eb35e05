DELETE FROM insights WHERE project_id = $1 AND id = $2 RETURNING id

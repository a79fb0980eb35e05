-- The current version of each of $2's cohorts that is the project's.
SELECT id, version FROM cohorts WHERE project_id = $1 AND id = ANY($2::bigint[])

SELECT count() AS count
FROM cohort_people
WHERE project_id = {project_id:UInt64} AND cohort_id = {cohort_id:UInt64} AND version = {version:UInt64}

-- A cohort's rows of every version but {keep}: older versions once a newer one is recorded, and rows a
-- failed computation left behind before the next one writes its version.
DELETE FROM cohort_people
WHERE project_id = {project_id:UInt64} AND cohort_id = {cohort_id:UInt64} AND version != {keep:UInt64}

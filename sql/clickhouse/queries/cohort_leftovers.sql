-- A cohort's rows of any version but {keep} (a failed computation's, or older ones not deleted yet): the
-- computation deletes them (cohort_prune.sql) only when there are some.
SELECT count() AS leftover
FROM cohort_people
WHERE project_id = {project_id:UInt64} AND cohort_id = {cohort_id:UInt64} AND version != {keep:UInt64}

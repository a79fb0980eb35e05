-- A cohort's versions older than {keep}, deleted in the background once {keep} is recorded. Never a newer
-- one: a later computation may already have written its rows.
DELETE FROM cohort_people
WHERE project_id = {project_id:UInt64} AND cohort_id = {cohort_id:UInt64} AND version < {keep:UInt64}

-- A page of a cohort version's members, by the person id's text, after {after}.
SELECT toString(person_id) AS id
FROM cohort_people
WHERE project_id = {project_id:UInt64} AND cohort_id = {cohort_id:UInt64} AND version = {version:UInt64}
  AND toString(person_id) > {after:String}
ORDER BY id
LIMIT {limit:UInt32}

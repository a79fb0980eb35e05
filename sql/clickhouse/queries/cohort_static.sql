-- A static cohort's computation: the current person (highest version) of each listed distinct id that has
-- one, as version {version} of the cohort.
INSERT INTO cohort_people (project_id, cohort_id, version, person_id)
SELECT DISTINCT {project_id:UInt64}, {cohort_id:UInt64}, {version:UInt64}, person
FROM
(
    SELECT argMax(person_id, version) AS person
    FROM person_distinct_ids
    WHERE project_id = {project_id:UInt64} AND distinct_id IN {distinct_ids:Array(String)}
    GROUP BY distinct_id
)

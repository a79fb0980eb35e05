-- A dynamic cohort's computation: the project's persons (current version, not deleted) whose current
-- properties and behaviour pass the conditions (filled in by workers/query/cohorts.py: person filters on
-- person_properties, behaviour as `id [NOT] IN (cohort_behavior.sql)`), as version {version}.
INSERT INTO cohort_people (project_id, cohort_id, version, person_id)
SELECT {project_id:UInt64}, {cohort_id:UInt64}, {version:UInt64}, id
FROM
(
    SELECT id, argMax(properties, version) AS person_properties, argMax(is_deleted, version) AS deleted
    FROM persons
    WHERE project_id = {project_id:UInt64}
    GROUP BY id
)
WHERE deleted = 0 AND (/*conditions*/)

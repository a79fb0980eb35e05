-- A row's person after merges (its distinct id's current person when the id ever moved, else the row's
-- person_id: person.sql) is a member of one cohort version: cohort_people's rows of {cohort, version}.
-- A condition on any row with distinct_id and person_id (events), so every shared filter can use it.
-- The cohort and version marks are bound parameters, filled in by workers/query/sql.py.
(
    distinct_id IN (
        SELECT distinct_id FROM person_distinct_ids
        WHERE project_id = {project_id:UInt64}
        GROUP BY distinct_id
        HAVING max(version) > 0 AND argMax(person_id, version) IN (
            SELECT person_id FROM cohort_people
            WHERE project_id = {project_id:UInt64} AND cohort_id = /*cohort*/ AND version = /*version*/
        )
    )
    OR (
        person_id IN (
            SELECT person_id FROM cohort_people
            WHERE project_id = {project_id:UInt64} AND cohort_id = /*cohort*/ AND version = /*version*/
        )
        AND distinct_id NOT IN (
            SELECT distinct_id FROM person_distinct_ids
            WHERE project_id = {project_id:UInt64}
            GROUP BY distinct_id
            HAVING max(version) > 0
        )
    )
)

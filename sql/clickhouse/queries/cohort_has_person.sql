-- A person (the column filled in as the person mark: one already resolved after merges) is a member of one
-- cohort version: cohort_people's rows of {cohort, version}. One set lookup per row, where
-- cohort_member.sql needs the distinct id's moves. The marks are filled in by workers/query/sql.py.
(
    /*person*/ IN (
        SELECT person_id FROM cohort_people
        WHERE project_id = {project_id:UInt64} AND cohort_id = /*cohort*/ AND version = /*version*/
    )
)

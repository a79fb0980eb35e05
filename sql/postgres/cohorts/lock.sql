-- A cohort to compute, locked until its computation is recorded: one computation of a cohort at a time.
SELECT id, project_id, kind, definition::text AS definition, version FROM cohorts WHERE id = $1 FOR UPDATE

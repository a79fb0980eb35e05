-- The project's cohorts (all, or those of $2), each with its number of static distinct ids.
SELECT c.id, c.name, c.kind, c.definition::text AS definition, c.version, c.count, c.unmatched,
       c.computed_at, c.created_at, c.updated_at,
       (SELECT count(*) FROM cohort_distinct_ids d WHERE d.cohort_id = c.id) AS distinct_ids_count
FROM cohorts c
WHERE c.project_id = $1 AND ($2::bigint IS NULL OR c.id = $2)
ORDER BY c.id

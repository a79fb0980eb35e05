INSERT INTO cohort_distinct_ids (cohort_id, distinct_id)
SELECT $1, d FROM unnest($2::text[]) AS d
ON CONFLICT DO NOTHING

SELECT distinct_id FROM cohort_distinct_ids WHERE cohort_id = $1 ORDER BY distinct_id

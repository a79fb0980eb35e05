DELETE FROM cohort_distinct_ids WHERE cohort_id = $1

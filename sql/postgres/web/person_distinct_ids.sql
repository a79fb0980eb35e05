-- GET /api/persons/{distinct_id}: all the distinct ids of person $1.
SELECT distinct_id FROM person_distinct_ids WHERE person_id = $1 ORDER BY distinct_id

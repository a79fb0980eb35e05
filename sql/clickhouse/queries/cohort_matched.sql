-- How many of a static cohort's distinct ids have a person.
SELECT uniqExact(distinct_id) AS matched
FROM person_distinct_ids
WHERE project_id = {project_id:UInt64} AND distinct_id IN {distinct_ids:Array(String)}

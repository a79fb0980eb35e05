-- GET /api/persons/{distinct_id}: the person of the project's distinct id $2.
SELECT p.id, p.properties::text AS properties, p.is_identified, p.created_at, p.version
FROM person_distinct_ids d JOIN persons p ON p.id = d.person_id
WHERE d.project_id = $1 AND d.distinct_id = $2

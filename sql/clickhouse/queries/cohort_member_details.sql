-- The current properties (persons, highest version) and distinct ids (each id's current person) of a
-- page of persons.
SELECT toString(id) AS member, argMax(properties, version) AS properties, CAST([] AS Array(String)) AS distinct_ids
FROM persons
WHERE project_id = {project_id:UInt64} AND id IN {ids:Array(UUID)}
GROUP BY id
UNION ALL
SELECT toString(person) AS member, '' AS properties, groupArray(distinct_id) AS distinct_ids
FROM
(
    SELECT distinct_id, argMax(person_id, version) AS person
    FROM person_distinct_ids
    WHERE project_id = {project_id:UInt64}
    GROUP BY distinct_id
)
WHERE person IN {ids:Array(UUID)}
GROUP BY person

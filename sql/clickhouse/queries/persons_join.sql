-- The persons' current properties, joined into trends and frequency when a filter or breakdown needs them.
LEFT JOIN
(
    SELECT id, argMax(properties, version) AS person_properties
    FROM persons
    WHERE project_id = {project_id:UInt64}
    GROUP BY id
) AS pp ON pp.id = ev.person

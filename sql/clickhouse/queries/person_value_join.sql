-- A funnel's person breakdown: each person's value, computed once per person from their current properties
-- (the value mark) and joined to the event rows by their person after merges (`ev`); person_found = 0 marks
-- the default row of an event whose person has no properties row. Values are {parameters}.
LEFT JOIN
(
    SELECT id, 1 AS person_found, /*value*/ AS person_value
    FROM
    (
        SELECT id, argMax(properties, version) AS person_properties
        FROM persons
        WHERE project_id = {project_id:UInt64}
        GROUP BY id
    )
) AS pp ON pp.id = ev.person

-- The person-side property conditions of a funnel, each computed once per person from their current
-- properties and joined to the grouped persons (`g`, one row each: fewer than their events). person_found
-- = 0 marks the default row of a person with no properties row; workers/query/funnels.py then uses each
-- condition's value on empty properties. The columns are filled in by workers/query/funnels.py; values are
-- {parameters}.
LEFT JOIN
(
    SELECT id, 1 AS person_found, /*columns*/
    FROM
    (
        SELECT id, argMax(properties, version) AS person_properties
        FROM persons
        WHERE project_id = {project_id:UInt64}
        GROUP BY id
    )
) AS pp ON pp.id = g.person

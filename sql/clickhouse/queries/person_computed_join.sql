-- Expressions of a person's current properties (the columns mark: a funnel's person-side conditions or its
-- person breakdown value), each computed once per person and joined by the person mark (`ev.person` to the
-- event rows, `g.person` to the grouped persons). person_found = 0 marks the default row of a person with no
-- properties row; workers/query/funnels.py then uses the expression's value on empty properties. The marks
-- are filled in by workers/query/funnels.py; values are {parameters}.
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
) AS pp ON pp.id = /*person*/

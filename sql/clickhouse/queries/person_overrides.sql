-- Persons after merges: each distinct id that ever moved to another person, with the person it belongs to
-- now (the highest version). The persons worker writes a distinct id's first row at version 0 and bumps the
-- version on every move, so an event of any other distinct id keeps the person it was written with, which
-- is that id's only person; a personless event (no row at all) keeps its own person id too. Joining only
-- the moved ids keeps the hash table small however many distinct ids a project has.
LEFT JOIN
(
    SELECT distinct_id, argMax(person_id, version) AS person_id
    FROM person_distinct_ids
    WHERE project_id = {project_id:UInt64}
    GROUP BY distinct_id
    HAVING max(version) > 0
) AS p ON p.distinct_id = e.distinct_id

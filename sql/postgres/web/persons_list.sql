-- GET /api/persons: a page of the project's persons, newest created first (then id), each with all their
-- distinct ids. $2 (search, lowercased; NULL: all) is a substring of one of their distinct ids or of their
-- properties' JSON text; $3, $4: the last person of the previous page (NULL: the first page).
SELECT p.id, p.properties::text AS properties, p.is_identified, p.created_at,
       array(SELECT d.distinct_id FROM person_distinct_ids d
             WHERE d.project_id = p.project_id AND d.person_id = p.id ORDER BY d.distinct_id) AS distinct_ids
FROM persons p
WHERE p.project_id = $1
  AND ($2::text IS NULL
       OR strpos(lower(p.properties::text), $2) > 0
       OR EXISTS (SELECT 1 FROM person_distinct_ids d
                  WHERE d.project_id = p.project_id AND d.person_id = p.id
                    AND strpos(lower(d.distinct_id), $2) > 0))
  AND ($3::timestamptz IS NULL OR (p.created_at, p.id) < ($3, $4::uuid))
ORDER BY p.created_at DESC, p.id DESC
LIMIT $5

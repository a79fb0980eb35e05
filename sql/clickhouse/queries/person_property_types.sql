-- GET /api/definitions: the JSON types of person property values on the project's newest {sample} person
-- rows (any version), with how often each was seen.
SELECT key AS name, toString(JSONType(properties, key)) AS type, count() AS seen
FROM
(
    SELECT properties
    FROM persons
    WHERE project_id = {project_id:UInt64} AND is_deleted = 0
    ORDER BY inserted_at DESC
    LIMIT {sample:UInt32}
)
ARRAY JOIN JSONExtractKeys(properties) AS key
GROUP BY name, type

-- GET /api/definitions: the JSON types of event property values on the project's newest {sample} events
-- (read in the table's order, so the newest days are read first), with how often each was seen.
SELECT key AS name, toString(JSONType(properties, key)) AS type, count() AS seen
FROM
(
    SELECT properties
    FROM events
    WHERE project_id = {project_id:UInt64}
    ORDER BY toDate(timestamp) DESC, timestamp DESC
    LIMIT {sample:UInt32}
)
ARRAY JOIN JSONExtractKeys(properties) AS key
GROUP BY name, type

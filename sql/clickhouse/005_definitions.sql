-- The names a project has used: event names, event property keys and person property keys, kept up to
-- date by materialized views on every insert (one row per name and insert block, merged away later), and
-- filled once from what is already stored. The query API refuses a name that is not here (400
-- unknown_event / unknown_property) instead of answering zeros for a typo.
CREATE TABLE IF NOT EXISTS definitions
(
    project_id  UInt64,
    kind        LowCardinality(String),
    name        String
)
ENGINE = ReplacingMergeTree
ORDER BY (project_id, kind, name);

CREATE MATERIALIZED VIEW IF NOT EXISTS definitions_from_events TO definitions AS
SELECT DISTINCT project_id, definition.1 AS kind, definition.2 AS name
FROM events
ARRAY JOIN arrayConcat([('event', event)], arrayMap(k -> ('event_property', k), JSONExtractKeys(properties))) AS definition;

CREATE MATERIALIZED VIEW IF NOT EXISTS definitions_from_persons TO definitions AS
SELECT DISTINCT project_id, 'person_property' AS kind, arrayJoin(JSONExtractKeys(properties)) AS name
FROM persons;

INSERT INTO definitions
SELECT DISTINCT project_id, definition.1 AS kind, definition.2 AS name
FROM events
ARRAY JOIN arrayConcat([('event', event)], arrayMap(k -> ('event_property', k), JSONExtractKeys(properties))) AS definition;

INSERT INTO definitions
SELECT DISTINCT project_id, 'person_property', arrayJoin(JSONExtractKeys(properties))
FROM persons;

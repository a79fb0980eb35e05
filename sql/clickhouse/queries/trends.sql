-- Trends for one event (or any event): per bucket (project time zone) and breakdown value, the events
-- (distinct uuids: a redelivered event counts once), the distinct persons after merges, and the sum and
-- average of a numeric property. The marked fragments (bucket, events_table, event, filters, breakdown,
-- value, has_value, hot, persons, person_properties) are filled in by workers/trends.py from fixed SQL;
-- every value is a bound {parameter}. Only sum and avg read `events FINAL` (one row per uuid before adding
-- values up); the other measures count distinct uuids and persons, which duplicates cannot change. Columns
-- no fragment uses are never read, so plain counts skip the properties JSON altogether.
SELECT
    /*bucket*/ AS bucket,
    /*breakdown*/ AS breakdown_value,
    uniqExact(uuid) AS events,
    uniqExact(person) AS persons,
    sumIf(/*value*/, /*has_value*/) AS property_sum,
    avgIf(/*value*/, /*has_value*/) AS property_avg
FROM
(
    SELECT e.*, if(p.person_id = toUUID('00000000-0000-0000-0000-000000000000'), e.person_id, p.person_id) AS person
    FROM
    (
        SELECT timestamp, uuid, distinct_id, person_id, properties, /*hot*/
        FROM /*events_table*/
        WHERE project_id = {project_id:UInt64}
          AND /*event*/
          AND timestamp >= {start:DateTime64(6, 'UTC')}
          AND timestamp < {end:DateTime64(6, 'UTC')}
    ) AS e
    /*persons*/
) AS ev
/*person_properties*/
WHERE /*filters*/
GROUP BY bucket, breakdown_value
ORDER BY bucket

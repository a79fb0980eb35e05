-- Trends for one event (or any event): per bucket (project time zone) and breakdown value, the events
-- (distinct uuids: a redelivered event counts once), the distinct persons after merges, and the sum and
-- average of a numeric property. The marked fragments (series_events, bucket, events_table, event, filters,
-- breakdown, value, has_value, hot, persons, person_properties) are filled in by workers/query/trends.py from fixed SQL;
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
    /*series_events*/
) AS ev
/*person_properties*/
WHERE /*filters*/
GROUP BY bucket, breakdown_value
ORDER BY bucket

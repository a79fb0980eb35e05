-- Reconciliation: distinct events stored per project and hour since {since} (Unix seconds).
SELECT project_id, toUnixTimestamp(toDateTime(toStartOfHour(timestamp))) AS hour, count(DISTINCT uuid) AS events
FROM events
WHERE timestamp >= toDateTime({since}, 'UTC')
GROUP BY project_id, hour

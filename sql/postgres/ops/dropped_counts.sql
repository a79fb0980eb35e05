-- Reconciliation: events dropped as blocked per project and hour since $1.
SELECT project_id, hour, count(*) AS events
FROM dropped_events
WHERE hour >= $1
GROUP BY project_id, hour

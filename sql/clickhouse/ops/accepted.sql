-- Reconciliation: events capture accepted per project and hour since {since} (Unix seconds), each capture
-- process's highest running total summed, and when the hour's count last moved.
SELECT project_id, toUnixTimestamp(hour) AS hour, sum(total) AS events, toUnixTimestamp(toDateTime(max(updated))) AS updated_at
FROM (
    SELECT project_id, hour, source, max(count) AS total, max(updated_at) AS updated
    FROM accepted_counts
    WHERE hour >= toDateTime({since}, 'UTC')
    GROUP BY project_id, hour, source
)
GROUP BY project_id, hour

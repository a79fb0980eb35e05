-- The ua_dlq_messages gauge.
SELECT stage, reason, state, count(*) AS messages
FROM dead_letters
GROUP BY stage, reason, state

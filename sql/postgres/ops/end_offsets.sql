-- The end of each topic partition: the highest offset any producer reported acknowledged within the last
-- $1 seconds (a process that stopped reporting, or a broker that came back empty, drops out).
SELECT topic, partition, max(next_offset) AS end_offset
FROM kafka_produced_offsets
WHERE updated_at >= now() - make_interval(secs => $1)
GROUP BY topic, partition

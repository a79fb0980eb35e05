-- The writer's freshness at start: the newest stored heartbeat of each partition (Unix microseconds).
SELECT partition, toUnixTimestamp64Micro(max(sent_at)) AS micros FROM heartbeats GROUP BY partition

-- A producing process's acknowledged offsets ($1 producer; $2 topics, $3 partitions, $4 next offsets).
-- forget_offsets.sql then removes its rows of partitions it no longer reports (a topic recreated).
INSERT INTO kafka_produced_offsets (producer, topic, partition, next_offset, updated_at)
SELECT $1, topic, partition, next_offset, now()
FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS t(topic, partition, next_offset)
ON CONFLICT (producer, topic, partition)
DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at

-- A producer's rows for partitions it no longer reports ($1 producer; $2 topics, $3 partitions it reports).
DELETE FROM kafka_produced_offsets o
WHERE o.producer = $1
  AND (o.topic, o.partition) NOT IN (SELECT * FROM unnest($2::text[], $3::integer[]))

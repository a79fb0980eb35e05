-- `--list`: the index, newest first. A NULL parameter is a filter not given; LIMIT NULL is no limit.
SELECT id, source_topic, source_partition, source_offset, stage, reason, error, attempts, state, uuid,
       first_seen, last_seen
FROM dead_letters
WHERE ($1::text IS NULL OR reason = $1)
  AND ($2::text IS NULL OR stage = $2)
  AND ($3::timestamptz IS NULL OR last_seen >= $3)
  AND ($4::bigint[] IS NULL OR id = ANY($4))
ORDER BY last_seen DESC, id DESC
LIMIT $5

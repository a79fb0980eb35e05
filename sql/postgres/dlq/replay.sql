-- `--replay`: the next parked rows after id $1, oldest first. Locked until the transaction marks them,
-- so two replays never take the same row and a row parked again meanwhile waits for the mark.
SELECT id, source_topic, key, value, attempts
FROM dead_letters
WHERE state = 'parked'
  AND id > $1
  AND ($2::text IS NULL OR reason = $2)
  AND ($3::text IS NULL OR stage = $3)
  AND ($4::timestamptz IS NULL OR last_seen >= $4)
  AND ($5::bigint[] IS NULL OR id = ANY($5))
ORDER BY id
LIMIT $6
FOR UPDATE SKIP LOCKED

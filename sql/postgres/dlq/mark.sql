-- `--replay`: rows re-produced (replayed) or past DLQ_MAX_ATTEMPTS (dead).
UPDATE dead_letters d
SET state = m.state
FROM unnest($1::bigint[], $2::text[]) AS m (id, state)
WHERE d.id = m.id

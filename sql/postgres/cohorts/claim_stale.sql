-- Claims dynamic cohorts last computed more than $1 seconds ago (or never), not claimed by another
-- process within that time; SKIP LOCKED lets several query processes claim disjoint cohorts.
UPDATE cohorts
SET refreshing_since = now()
WHERE id IN (
    SELECT id FROM cohorts
    WHERE kind = 'dynamic'
      AND (computed_at IS NULL OR computed_at < now() - make_interval(secs => $1))
      AND (refreshing_since IS NULL OR refreshing_since < now() - make_interval(secs => $1))
    ORDER BY computed_at NULLS FIRST
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id

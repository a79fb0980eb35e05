-- A completed computation: its version becomes the one readers bind.
UPDATE cohorts
SET version = $2, count = $3, unmatched = $4, computed_at = $5, refreshing_since = NULL
WHERE id = $1

-- Reconciliation: the events parked in the DLQ and not replayed (a replayed one is counted where it lands),
-- one row per uuid; the value is the event as its stage got it (project and timestamp read by the caller).
SELECT DISTINCT ON (uuid) uuid, value
FROM dead_letters
WHERE source_topic IN ('events_raw', 'events') AND state <> 'replayed' AND uuid IS NOT NULL
  AND last_seen >= $1
ORDER BY uuid, last_seen DESC

-- One event name's rows for a funnel (funnels.sql joins one of these per name with UNION ALL; strict order
-- adds one for every other event): steps has bit k set when the row's event and event filters match step
-- k + 1, excluding bit j when they match exclusion j + 1, row_breakdown is an event breakdown's value.
-- The fragments are filled in by workers/query/funnels.py; values are {parameters}.
SELECT timestamp, distinct_id, person_id, /*uuid*/ AS uuid, /*masks*/ AS steps,
       /*exclusions*/ AS excluding, /*row_breakdown*/ AS row_breakdown
FROM events
WHERE project_id = {project_id:UInt64}
  AND /*event*/
  AND timestamp >= {start:DateTime64(6, 'UTC')}
  AND timestamp < {last:DateTime64(6, 'UTC')}

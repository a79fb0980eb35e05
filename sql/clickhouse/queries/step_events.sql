-- One event name's rows for a funnel (funnels.sql joins one of these per name with UNION ALL): masks has
-- bit k set when the row matches step k + 1 (its event, its filters, and for step 1 the date range), and
-- row_breakdown is the breakdown value for step-1 rows. The masks and row_breakdown fragments are filled
-- in by workers/query/funnels.py; values are {parameters}.
SELECT timestamp, distinct_id, person_id, /*masks*/ AS masks, /*row_breakdown*/ AS row_breakdown
FROM events
WHERE project_id = {project_id:UInt64}
  AND event = {/*event*/:String}
  AND timestamp >= {start:DateTime64(6, 'UTC')}
  AND timestamp < {last:DateTime64(6, 'UTC')}

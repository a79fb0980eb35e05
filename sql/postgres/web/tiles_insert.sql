-- $2: the insight ids in tile order (workers/query/saved.py checked they are the project's).
INSERT INTO dashboard_tiles (dashboard_id, position, insight_id)
SELECT $1, t.position, t.insight_id
FROM unnest($2::bigint[]) WITH ORDINALITY AS t(insight_id, position)

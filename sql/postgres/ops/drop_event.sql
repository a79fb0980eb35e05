-- Events persons dropped as blocked ($1 project ids, $2 uuids, $3 hours, $4 reasons); a redelivery adds nothing.
INSERT INTO dropped_events (project_id, uuid, hour, reason)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[])
ON CONFLICT (project_id, uuid) DO NOTHING

-- An event's person after merges: the person its distinct id belongs to now when the id ever moved (`p`,
-- joined by person_overrides.sql), else the event's own person id (`e`).
if(p.person_id = toUUID('00000000-0000-0000-0000-000000000000'), e.person_id, p.person_id)

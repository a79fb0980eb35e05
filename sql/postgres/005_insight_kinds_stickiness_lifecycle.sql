-- issue 12: saved insights may also be stickiness and lifecycle requests (workers.query.insights).
ALTER TABLE insights DROP CONSTRAINT IF EXISTS insights_kind_check;
ALTER TABLE insights ADD CONSTRAINT insights_kind_check
    CHECK (kind IN ('trends', 'funnels', 'retention', 'sessions', 'paths', 'stickiness', 'lifecycle'));

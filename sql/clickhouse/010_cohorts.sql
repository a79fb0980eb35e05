-- issue 12: the members of each cohort computation. A computation inserts version v + 1 whole, then
-- Postgres records v + 1 as the cohort's version; readers bind that version, so they never see a half
-- written one, and older versions are deleted afterwards.
CREATE TABLE IF NOT EXISTS cohort_people
(
    project_id  UInt64,
    cohort_id   UInt64,
    version     UInt64,
    person_id   UUID
)
ENGINE = MergeTree
ORDER BY (project_id, cohort_id, version, person_id);

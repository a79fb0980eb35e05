-- The events of one trends series in the range, each with its person after merges (the person and persons
-- fragments are person.sql and person_overrides.sql); shared by trends.sql and frequency.sql.
SELECT e.*, /*person*/ AS person
FROM
(
    SELECT timestamp, uuid, distinct_id, person_id, properties, /*hot*/
    FROM /*events_table*/
    WHERE project_id = {project_id:UInt64}
      AND /*event*/
      AND timestamp >= {start:DateTime64(6, 'UTC')}
      AND timestamp < {end:DateTime64(6, 'UTC')}
) AS e
/*persons*/

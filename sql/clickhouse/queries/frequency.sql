-- Frequency: persons (after merges) bucketed by how many times they did the event in the whole range
-- (distinct uuids: a redelivered event counts once), 1..9 and 10+. The series_events (and in it the event, hot,
-- persons, events_table), filters and person_properties fragments are filled in by workers/query/trends.py; values are {parameters}.
SELECT least(times, 10) AS times, count() AS persons
FROM
(
    SELECT person, uniqExact(uuid) AS times
    FROM
    (
        /*series_events*/
    ) AS ev
    /*person_properties*/
    WHERE /*filters*/
    GROUP BY person
)
GROUP BY times
ORDER BY times

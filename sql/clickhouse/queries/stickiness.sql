-- Stickiness for one event: persons (after merges) by the number of intervals (day, ISO week or month, in
-- the project's time zone) of the range in which they did the event. Intervals are counted as distinct
-- interval numbers, so a redelivered event changes nothing. The series_events (and in it the event, hot,
-- persons, events_table), interval_number, filters and person_properties fragments are filled in by
-- workers/query/stickiness.py; values are {parameters}.
SELECT intervals, count() AS persons
FROM
(
    SELECT person, uniqExact(/*interval_number*/(timestamp, {tz:String})) AS intervals
    FROM
    (
        /*series_events*/
    ) AS ev
    /*person_properties*/
    WHERE /*filters*/
    GROUP BY person
)
GROUP BY intervals
ORDER BY intervals

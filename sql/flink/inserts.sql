-- first and last event by event time, without a Python aggregate (FIRST_VALUE follows arrival order):
-- MIN and MAX of 15 digits of ms, the 36-character uuid for ties, then a JSON array from character 52
INSERT INTO sessions_sink
SELECT
  CASE WHEN kind = 'window' THEN session_uuid(project_id, pkey, start_ms) ELSE pkey END,
  kind, project_id,
  JSON_VALUE(f, '$[0]'), JSON_VALUE(f, '$[1]'),
  TO_TIMESTAMP_LTZ(start_ms, 3), TO_TIMESTAMP_LTZ(end_ms, 3), (end_ms - start_ms) / 1000.0,
  event_count, pageview_count,
  JSON_VALUE(f, '$[2]'), JSON_VALUE(l, '$[0]'), event_count = 1,
  JSON_VALUE(f, '$[3]'), JSON_VALUE(f, '$[4]'), JSON_VALUE(f, '$[5]'), JSON_VALUE(f, '$[6]')
FROM (
  SELECT project_id, kind, pkey, start_ms, end_ms, event_count, pageview_count,
         SUBSTR(first_packed, 52) AS f, SUBSTR(last_packed, 52) AS l
  FROM (
    SELECT project_id, kind, pkey, window_start, window_end,
      MIN(ts_ms) AS start_ms, MAX(ts_ms) AS end_ms, COUNT(*) AS event_count,
      SUM(CASE WHEN event = '$pageview' THEN 1 ELSE 0 END) AS pageview_count,
      MIN(LPAD(CAST(ts_ms AS STRING), 15, '0') || `uuid`
          || JSON_ARRAY(person_id, distinct_id, url, browser, os, device_type, country NULL ON NULL)) AS first_packed,
      MAX(LPAD(CAST(ts_ms AS STRING), 15, '0') || `uuid` || JSON_ARRAY(url NULL ON NULL)) AS last_packed
    FROM TABLE(SESSION(TABLE ev PARTITION BY (project_id, kind, pkey), DESCRIPTOR(ts),
                       INTERVAL '{{session_gap_minutes}}' MINUTE))
    GROUP BY project_id, kind, pkey, window_start, window_end
  )
);

INSERT INTO counts_sink
SELECT project_id, event, CAST(window_start AS TIMESTAMP_LTZ(3)), COUNT(*),
       ARRAY_AGG(DISTINCT JSON_ARRAY(person_id, distinct_id))
FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY project_id, event, window_start, window_end;

-- exactly the events the minute window drops: their window has fired (its end - 1 <= the watermark)
INSERT INTO late_sink
SELECT `uuid`, project_id, event, distinct_id, person_id, `timestamp`, kafka_partition, kafka_offset
FROM ev
WHERE TO_TIMESTAMP_LTZ(ts_ms - MOD(ts_ms, 60000) + 59999, 3) <= CURRENT_WATERMARK(ts);

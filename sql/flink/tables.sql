CREATE TABLE events_src (
  `uuid` STRING,
  project_id BIGINT,
  event STRING,
  distinct_id STRING,
  person_id STRING,
  `timestamp` STRING,
  protocol STRING,
  properties ROW<`$session_id` STRING, `$current_url` STRING, `$browser` STRING, `$os` STRING,
                 `$device_type` STRING, `$geoip_country_code` STRING, `$device_id` STRING, `$user_id` STRING>,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  -- epoch ms of the ISO-8601 timestamp: TO_TIMESTAMP_LTZ with a pattern ignores a +hh:mm offset and CAST
  -- refuses the T, so by hand (UNIX_TIMESTAMP reads in table.local-time-zone, UTC). A computed column
  -- cannot use another, hence the same expression again in ts
  ts_ms AS UNIX_TIMESTAMP(SUBSTR(`timestamp`, 1, 19), 'yyyy-MM-dd''T''HH:mm:ss') * 1000
    + COALESCE(CAST(RPAD(REGEXP_EXTRACT(`timestamp`, '^.{19}\.(\d{1,3})', 1), 3, '0') AS BIGINT), 0)
    - CASE WHEN `timestamp` LIKE '%Z' THEN 0
           ELSE (CASE WHEN SUBSTR(`timestamp`, CHAR_LENGTH(`timestamp`) - 5, 1) = '-' THEN -1 ELSE 1 END)
                * (CAST(SUBSTR(`timestamp`, CHAR_LENGTH(`timestamp`) - 4, 2) AS BIGINT) * 60
                   + CAST(SUBSTR(`timestamp`, CHAR_LENGTH(`timestamp`) - 1, 2) AS BIGINT)) * 60000 END,
  ts AS TO_TIMESTAMP_LTZ(
    UNIX_TIMESTAMP(SUBSTR(`timestamp`, 1, 19), 'yyyy-MM-dd''T''HH:mm:ss') * 1000
    + COALESCE(CAST(RPAD(REGEXP_EXTRACT(`timestamp`, '^.{19}\.(\d{1,3})', 1), 3, '0') AS BIGINT), 0)
    - CASE WHEN `timestamp` LIKE '%Z' THEN 0
           ELSE (CASE WHEN SUBSTR(`timestamp`, CHAR_LENGTH(`timestamp`) - 5, 1) = '-' THEN -1 ELSE 1 END)
                * (CAST(SUBSTR(`timestamp`, CHAR_LENGTH(`timestamp`) - 4, 2) AS BIGINT) * 60
                   + CAST(SUBSTR(`timestamp`, CHAR_LENGTH(`timestamp`) - 1, 2) AS BIGINT)) * 60000 END, 3),
  pt AS PROCTIME(),
  -- on-event watermarks: which events are late depends only on the order they are read
  WATERMARK FOR ts AS ts - INTERVAL '{{lateness_seconds}}' SECOND
) WITH (
  'connector' = 'kafka', 'properties.bootstrap.servers' = '{{bootstrap}}', 'topic' = '{{events_topic}}',
  'properties.group.id' = '{{group}}', 'properties.commit.offsets.on.checkpoint' = 'true',
  'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = 'earliest'{{bounded}},
  'format' = 'json', 'json.ignore-parse-errors' = 'true', 'json.fail-on-missing-field' = 'false',
  'scan.watermark.emit.strategy' = 'on-event', 'scan.watermark.idle-timeout' = '30 s'
);

-- the first arrival of each uuid in processing-time order: append-only, and ts stays a rowtime for the windows
CREATE TEMPORARY VIEW events_dedup AS
SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY `uuid` ORDER BY pt ASC) AS rn FROM events_src
  WHERE `uuid` IS NOT NULL AND project_id IS NOT NULL AND distinct_id IS NOT NULL AND person_id IS NOT NULL
    AND ts_ms IS NOT NULL
) WHERE rn = 1;

CREATE TEMPORARY VIEW ev AS
SELECT `uuid`, project_id, event, distinct_id, person_id, `timestamp`, kafka_partition, kafka_offset, ts, ts_ms,
  CASE WHEN skey IS NULL THEN 'window' WHEN protocol = 'amplitude' THEN 'amplitude' ELSE 'explicit' END AS kind,
  COALESCE(skey, distinct_id) AS pkey,
  url, browser, os, device_type, country
FROM (
  SELECT *,
    -- Amplitude's session id reaches `events` as $session_id: epoch ms, or -1 (none)
    CASE WHEN protocol = 'amplitude' THEN
           CASE WHEN TRY_CAST(properties.`$session_id` AS BIGINT) > 0 THEN 'amp:'
                || COALESCE(NULLIF(properties.`$device_id`, ''), NULLIF(properties.`$user_id`, ''), distinct_id)
                || ':' || properties.`$session_id` END
         ELSE NULLIF(properties.`$session_id`, '') END AS skey,
    properties.`$current_url` AS url, properties.`$browser` AS browser, properties.`$os` AS os,
    properties.`$device_type` AS device_type, properties.`$geoip_country_code` AS country
  FROM events_dedup
);

CREATE TABLE sessions_sink (
  session_id STRING, kind STRING, project_id BIGINT, person_id STRING, distinct_id STRING,
  `start` TIMESTAMP_LTZ(3), `end` TIMESTAMP_LTZ(3), duration_seconds DOUBLE,
  event_count BIGINT, pageview_count INT, entry_url STRING, exit_url STRING, bounced BOOLEAN,
  browser STRING, os STRING, device_type STRING, country STRING
) WITH (
  'connector' = 'kafka', 'properties.bootstrap.servers' = '{{bootstrap}}', 'topic' = '{{sessions_topic}}',
  'key.format' = 'raw', 'key.fields' = 'session_id',
  'value.format' = 'json', 'value.json.timestamp-format.standard' = 'ISO-8601',
  'sink.delivery-guarantee' = 'at-least-once'
);

CREATE TABLE counts_sink (
  project_id BIGINT, event STRING, `minute` TIMESTAMP_LTZ(3), `count` BIGINT,
  -- each distinct (person id, distinct id) of the minute as a JSON array: a DISTINCT aggregate takes no ROW
  actors ARRAY<STRING>
) WITH (
  'connector' = 'kafka', 'properties.bootstrap.servers' = '{{bootstrap}}', 'topic' = '{{counts_topic}}',
  'format' = 'json', 'json.timestamp-format.standard' = 'ISO-8601', 'sink.delivery-guarantee' = 'at-least-once'
);

CREATE TABLE late_sink (
  `uuid` STRING, project_id BIGINT, event STRING, distinct_id STRING, person_id STRING, `timestamp` STRING,
  kafka_partition INT, kafka_offset BIGINT
) WITH (
  'connector' = 'kafka', 'properties.bootstrap.servers' = '{{bootstrap}}', 'topic' = '{{late_topic}}',
  'format' = 'json', 'sink.delivery-guarantee' = 'at-least-once'
);

-- bench/flink.py's ceiling: the job's own source table (sql/flink/tables.sql, run first) written back to
-- Kafka as it is read: the same JSON decoding, event-time column and watermark, no dedup, no windows.
-- The sink has the source's physical columns (LIKE ... EXCLUDING ALL); bench/flink.py lists them in the INSERT.
CREATE TABLE passthrough_sink WITH (
  'connector' = 'kafka', 'properties.bootstrap.servers' = '{{bootstrap}}', 'topic' = '{{passthrough_topic}}',
  'format' = 'json', 'sink.delivery-guarantee' = 'at-least-once'
) LIKE events_src (EXCLUDING ALL);

INSERT INTO passthrough_sink SELECT {{columns}} FROM events_src;

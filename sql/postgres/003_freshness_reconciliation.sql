-- issue 10: the offsets each producing process had acknowledged, per topic partition (workers.lag: consumer
-- lag without the broker's end offsets), and the events persons dropped as blocked (workers.reconcile).
CREATE TABLE IF NOT EXISTS kafka_produced_offsets (
    producer     text NOT NULL,       -- one process's run: <worker>-<random id>
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,     -- the offset after the highest it had acknowledged
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (producer, topic, partition)
);
CREATE TABLE IF NOT EXISTS dropped_events (
    project_id  bigint NOT NULL,
    uuid        text NOT NULL,
    hour        timestamptz NOT NULL,  -- the UTC hour of the event's timestamp, as capture counted it
    reason      text NOT NULL,
    PRIMARY KEY (project_id, uuid)
);
CREATE INDEX IF NOT EXISTS dropped_events_hour_idx ON dropped_events (hour);

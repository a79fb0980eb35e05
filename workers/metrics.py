"""Every Prometheus metric of every worker, defined once. Each worker serves them on its own /metrics port."""

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZES = (1, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000)
_BYTES = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 20971520)

# capture
CAPTURE_REQUESTS = Counter(
    "ua_capture_requests_total", "HTTP requests to capture by endpoint and status", ["endpoint", "status"]
)
CAPTURE_EVENTS = Counter(
    "ua_capture_events_total",
    "Events received by capture by protocol and outcome (accepted, invalid, rejected, unavailable)",
    ["protocol", "outcome"],
)
CAPTURE_REQUEST_BYTES = Histogram(
    "ua_capture_request_bytes", "Request body size as received (before decompression)", buckets=_BYTES
)
CAPTURE_REQUEST_SECONDS = Histogram(
    "ua_capture_request_seconds", "Capture request handling time, acknowledgement included", buckets=_LATENCY
)

# Kafka producer (every stage that produces)
KAFKA_PRODUCED = Counter("ua_kafka_produced_messages_total", "Messages acknowledged by Kafka", ["topic"])
KAFKA_PRODUCE_ERRORS = Counter(
    "ua_kafka_produce_errors_total", "Produce calls that failed or timed out", ["topic"]
)
KAFKA_PRODUCE_SECONDS = Histogram(
    "ua_kafka_produce_seconds",
    "Time from send to acknowledgement of a produce call",
    ["topic"],
    buckets=_LATENCY,
)

# every stage that cleans events (capture, persons, writer)
SANITIZED_VALUES = Counter(
    "ua_sanitized_values_total",
    "Strings and numbers replaced because no store can hold them (U+0000, lone surrogates, integers past 64 bits)",
    ["stage"],
)

# consume loop (persons, writer)
CONSUMER_MESSAGES = Counter(
    "ua_consumer_messages_total",
    "Messages consumed by stage and outcome (ok, drop, dead_letter)",
    ["stage", "outcome"],
)
CONSUMER_BATCH_MESSAGES = Histogram(
    "ua_consumer_batch_messages", "Messages per flushed batch", ["stage"], buckets=_SIZES
)
CONSUMER_FLUSH_SECONDS = Histogram(
    "ua_consumer_flush_seconds", "Time to process, write and commit one batch", ["stage"], buckets=_LATENCY
)
CONSUMER_RETRIES = Counter(
    "ua_consumer_retries_total", "Batch attempts retried after an infrastructure error", ["stage"]
)
CONSUMER_ISOLATIONS = Counter(
    "ua_consumer_isolations_total",
    "Batches split in halves to find the messages behind a data error, by step (process, sink)",
    ["stage", "step"],
)
CONSUMER_COMMITS = Counter("ua_consumer_commits_total", "Offset commits", ["stage"])
CONSUMER_LAG = Gauge(
    "ua_consumer_lag_messages",
    "Messages produced (the producers' acknowledged offsets, workers.lag) minus the group's committed offset",
    ["stage", "topic", "partition"],
)
DEAD_LETTERS = Counter(
    "ua_dead_letter_messages_total", "Messages parked in dead_letter by stage and reason", ["stage", "reason"]
)

# persons
PERSONS_CREATED = Counter("ua_persons_created_total", "Persons created on first sight of a distinct id")
PERSONS_MERGES = Counter("ua_persons_merges_total", "Persons merged into another, by link kind", ["kind"])
PERSONS_REFUSED = Counter(
    "ua_persons_refused_total",
    "Merges and property updates refused (already_identified, junk_id, properties_too_large)",
    ["reason"],
)
PERSONS_CONFLICTS = Counter(
    "ua_persons_conflicts_total", "Batches walked again because another worker changed the same persons"
)
PERSONS_POSTGRES_STATEMENTS = Counter("ua_persons_postgres_statements_total", "Postgres statements run")
BLOCKED_EVENTS = Counter(
    "ua_persons_blocked_events_total", "Events dropped by blocked_events", ["project_id", "event"]
)
PERSONS_RESOLVE_SECONDS = Histogram(
    "ua_persons_resolve_seconds", "Postgres time to resolve one batch of distinct ids", buckets=_LATENCY
)

# writer and ClickHouse
CLICKHOUSE_ROWS = Counter("ua_clickhouse_inserted_rows_total", "Rows inserted into ClickHouse", ["table"])
CLICKHOUSE_INSERT_SECONDS = Histogram(
    "ua_clickhouse_insert_seconds", "Time of one ClickHouse batch insert", ["table"], buckets=_LATENCY
)
WRITER_LATE_EVENTS = Counter(
    "ua_writer_late_events_total", "Late events (from the Flink job's late_events) the writer stored"
)

# query API
QUERY_REQUESTS = Counter("ua_query_requests_total", "Query API requests", ["endpoint", "status"])
QUERY_SECONDS = Histogram("ua_query_seconds", "Query API request time", ["endpoint"], buckets=_LATENCY)
COHORT_COMPUTATIONS = Counter(
    "ua_cohort_computations_total",
    "Cohort computations by result: ok, or error (the last version stays)",
    ["result"],
)
COHORT_COMPUTATION_SECONDS = Histogram(
    "ua_cohort_computation_seconds", "Time to compute a cohort's members", buckets=_LATENCY
)
QUERY_ROLLUP_BUCKETS = Counter(
    "ua_query_rollup_buckets_total",
    "Trends buckets of plain totals and uniques, by where they were counted (rollup: the Flink job's rollups)",
    ["source"],
)


class WorkerMetrics:
    """The default registry seen through one worker's prefixes (workers.registry), so /metrics lists only
    what it does."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self._prefixes = prefixes

    def collect(self) -> Iterator[Metric]:
        return (metric for metric in REGISTRY.collect() if metric.name.startswith(self._prefixes))


# dlq
DLQ_INDEXED = Counter(
    "ua_dlq_indexed_messages_total",
    "Dead letters indexed in Postgres by stage and reason",
    ["stage", "reason"],
)
DLQ_UNINDEXABLE = Counter(
    "ua_dlq_unindexable_messages_total",
    "Dead letters Postgres refused to index; they stay in dead_letter (log line dlq_unindexable)",
)
DLQ_MESSAGES = Gauge(
    "ua_dlq_messages",
    "Indexed dead letters by stage, reason and state, as of the last refresh",
    ["stage", "reason", "state"],
)


# issue 10: freshness and reconciliation (the writer; the lag above is measured by workers.lag)
PIPELINE_FRESHNESS = Gauge(
    "ua_pipeline_freshness_seconds",
    "Now minus the capture time of the newest stored heartbeat, for the stalest partition of events_raw",
)
PIPELINE_FRESHNESS.set(float("nan"))  # unknown until the writer has read the stored heartbeats
PIPELINE_PARTITION_FRESHNESS = Gauge(
    "ua_pipeline_partition_freshness_seconds",
    "Now minus the capture time of the newest stored heartbeat of this events_raw partition",
    ["partition"],
)
RECONCILE_MISSING = Gauge(
    "ua_reconcile_missing_events",
    "Accepted by capture minus stored, parked and blocked, per project and hour, as of the last run (0s not listed)",
    ["project_id", "hour"],
)
RECONCILE_LAST_RUN = Gauge(
    "ua_reconcile_last_run_timestamp_seconds", "When the writer's last reconciliation finished (Unix time)"
)


# issue 10: limits (capture's rate limits and hot keys, the query API's budgets)
CAPTURE_RATE_LIMITED = Counter(
    "ua_capture_rate_limited_events_total",
    "Events refused (429) by a rate limit: project (events/s of the project), distinct_id (of one distinct id)",
    ["limit"],
)
CAPTURE_OVERFLOW_EVENTS = Counter(
    "ua_capture_overflow_events_total", "Events of hot distinct ids routed to events_overflow"
)
CAPTURE_LIMIT_CHECK_SECONDS = Histogram(
    "ua_capture_limit_check_seconds",
    "Time of one request's rate-limit check (Redis round trip, or the per-process buckets)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
CAPTURE_LIMITS_LOCAL = Counter(
    "ua_capture_limit_checks_local_total",
    "Rate-limit checks made with per-process buckets because Redis could not be reached",
)
QUERY_REJECTED = Counter(
    "ua_query_rejected_total",
    "Query API requests refused by a limit: concurrency (429, the key's budget), max_execution_time,"
    " max_memory_usage, max_rows_to_read (ClickHouse stopped the statement)",
    ["reason"],
)


# issue 11: the web app
QUERY_LIVE_STREAMS = Gauge("ua_query_live_streams", "Open GET /api/live event streams")

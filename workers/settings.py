"""Settings, read once from the environment and validated at start.

Every variable is listed in `FIELDS` with its default; `config/dev.env` holds the local defaults and the
README documents each one. A bad value raises `SettingsError` naming the variable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    pass


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _nonempty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _clickhouse_url(raw: str) -> str:
    if not (raw.startswith("chdb://") or raw.startswith("clickhouse://")):
        raise ValueError("must start with chdb:// (embedded) or clickhouse:// (server)")
    return raw


def _log_level(raw: str) -> str:
    level = raw.strip().lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError("must be one of debug, info, warning, error")
    return level


def _jvm_size(raw: str) -> str:
    size = raw.strip().lower()
    if not re.fullmatch(r"[1-9][0-9]*[kmg]", size):
        raise ValueError("must be a JVM size such as 256m or 1g")
    return size


def _state_backend(raw: str) -> str:
    backend = raw.strip().lower()
    if backend not in ("hashmap", "rocksdb"):
        raise ValueError("must be hashmap or rocksdb")
    return backend


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return raw


QUERY_LIMIT_NAMES = ("max_execution_time", "max_memory_usage", "max_rows_to_read")


def _endpoint_limits(raw: str) -> dict[str, dict[str, float]]:
    """JSON {"<endpoint>": {"max_execution_time" | "max_memory_usage" | "max_rows_to_read": number}};
    the query API checks the endpoint names when it starts."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"must be a JSON object: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError('must be a JSON object of objects: {"funnels": {"max_execution_time": 60}}')
    for endpoint, limits in value.items():
        for name, number in limits.items():
            if name not in QUERY_LIMIT_NAMES:
                raise ValueError(f"{endpoint}.{name}: a limit is one of {', '.join(QUERY_LIMIT_NAMES)}")
            if not isinstance(number, int | float) or isinstance(number, bool) or number <= 0:
                raise ValueError(f"{endpoint}.{name} must be a positive number")
    return value


def _compression(raw: str) -> str:
    codec = raw.strip().lower()
    if codec not in ("none", "gzip"):
        raise ValueError("must be none or gzip (lz4, snappy and zstd need the cramjam package)")
    return codec


_port = _int(0, 65535)
_MB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    kafka_topic_partitions: int
    kafka_enable_idempotence: bool
    kafka_produce_timeout_seconds: float
    kafka_consumer_group_prefix: str
    kafka_session_timeout_seconds: float
    kafka_confirm_topics: bool
    postgres_dsn: str
    clickhouse_url: str
    capture_host: str
    capture_port: int
    capture_max_body_bytes: int
    capture_max_event_bytes: int
    project_cache_seconds: float
    query_host: str
    query_port: int
    query_max_rows: int
    query_max_seconds: float
    query_cache_seconds: float
    query_cache_recent_seconds: float
    query_cache_entries: int
    dev_api_key: str
    admin_api_key: str
    dev_token: str
    metrics_host: str
    capture_metrics_port: int
    persons_metrics_port: int
    writer_metrics_port: int
    query_metrics_port: int
    dlq_metrics_port: int
    persons_batch_max_messages: int
    persons_batch_max_seconds: float
    persons_cache_size: int
    persons_max_properties_bytes: int
    persons_config_refresh_seconds: float
    geoip_database_path: str
    writer_batch_max_rows: int
    writer_batch_max_seconds: float
    sink_retry_attempts: int
    sink_retry_backoff_seconds: float
    drain_timeout_seconds: float
    kafka_topic_check_seconds: float
    dlq_max_ratio: float
    dlq_window_messages: int
    dlq_max_consecutive: int
    dlq_max_attempts: int
    event_max_depth: int
    event_max_keys: int
    event_max_key_length: int
    log_level: str
    flink_parallelism: int
    flink_jvm_heap: str
    flink_checkpoint_seconds: float
    flink_state_backend: str
    flink_checkpoint_dir: str
    flink_lateness_seconds: int
    session_gap_minutes: int
    flink_jars_dir: str
    flink_rest_port: int
    flink_metrics_port: int
    # issue 10: freshness and reconciliation
    heartbeat_seconds: float
    reconcile_interval_seconds: float
    reconcile_hours: int
    reconcile_settle_seconds: float
    # issue 10: limits
    capture_rate_limits: bool
    capture_redis_url: str
    capture_redis_prefix: str
    capture_project_events_per_second: float
    capture_project_burst: int
    capture_distinct_id_events_per_second: float
    capture_distinct_id_burst: int
    capture_overflow_events_per_second: float
    capture_overflow_burst: int
    capture_amplitude_max_events: int
    query_key_concurrency: int
    query_max_memory_bytes: int
    query_max_rows_to_read: int
    query_endpoint_limits: dict[str, dict[str, float]]
    # issue 10: broker
    kafka_compression: str
    # issue 11: the web app
    live_poll_seconds: float
    web_dist_dir: str
    # issue 12: exports
    events_export_chunk_rows: int
    # issue 12: cohorts
    cohort_refresh_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = field.name.upper()
            default, parse = FIELDS[field.name]
            raw = env.get(name, default)
            try:
                values[field.name] = parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r}: {exc}") from None
        return cls(**values)


# name -> (default as it would appear in the environment, parser)
FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "kafka_bootstrap_servers": ("127.0.0.1:9092", _nonempty),
    "kafka_topic_partitions": ("4", _int(1, 1024)),
    "kafka_enable_idempotence": ("false", _bool),
    "kafka_produce_timeout_seconds": ("10", _float(0.1, 300)),
    "kafka_consumer_group_prefix": ("user-analytics", _nonempty),
    "kafka_session_timeout_seconds": ("10", _float(1, 300)),
    "kafka_confirm_topics": ("true", _bool),
    "postgres_dsn": ("postgresql://postgres@127.0.0.1:5432/user_analytics", _nonempty),
    "clickhouse_url": ("chdb://var/chdb", _clickhouse_url),
    "capture_host": ("127.0.0.1", _nonempty),
    "capture_port": ("8000", _port),
    "capture_max_body_bytes": (str(20 * _MB), _int(1024, 1024 * _MB)),
    "capture_max_event_bytes": (str(1 * _MB), _int(256, 1024 * _MB)),
    "project_cache_seconds": ("30", _float(0, 86400)),
    "query_host": ("127.0.0.1", _nonempty),
    "query_port": ("8001", _port),
    "query_max_rows": ("10000", _int(1, 10_000_000)),
    "query_max_seconds": ("30", _float(0.1, 3600)),
    "query_cache_seconds": ("3600", _float(0, 30 * 86400)),
    "query_cache_recent_seconds": ("60", _float(0, 86400)),
    "query_cache_entries": ("1000", _int(0, 1_000_000)),
    "dev_api_key": ("dev-api-key", _nonempty),
    "admin_api_key": ("dev-admin-key", _nonempty),
    "dev_token": ("dev-token", _nonempty),
    "metrics_host": ("127.0.0.1", _nonempty),
    "capture_metrics_port": ("9100", _port),
    "persons_metrics_port": ("9101", _port),
    "writer_metrics_port": ("9102", _port),
    "query_metrics_port": ("9103", _port),
    "dlq_metrics_port": ("9104", _port),
    "persons_batch_max_messages": ("1000", _int(1, 1_000_000)),
    "persons_batch_max_seconds": ("0.2", _float(0.001, 60)),
    "persons_cache_size": ("200000", _int(0, 100_000_000)),
    "persons_max_properties_bytes": (str(512 * 1024), _int(1024, 64 * _MB)),
    "persons_config_refresh_seconds": ("30", _float(0.1, 3600)),
    "geoip_database_path": ("", str.strip),
    "writer_batch_max_rows": ("20000", _int(1, 10_000_000)),
    "writer_batch_max_seconds": ("1.0", _float(0.001, 600)),
    "sink_retry_attempts": ("6", _int(1, 1000)),
    "sink_retry_backoff_seconds": ("0.5", _float(0, 60)),
    "drain_timeout_seconds": ("30", _float(0.1, 3600)),
    "kafka_topic_check_seconds": ("5", _float(0.1, 3600)),
    "dlq_max_ratio": ("0.5", _float(0, 1)),
    "dlq_window_messages": ("1000", _int(1, 10_000_000)),
    "dlq_max_consecutive": ("1000", _int(1, 10_000_000)),
    "dlq_max_attempts": ("3", _int(1, 1000)),
    "event_max_depth": ("64", _int(2, 250)),
    "event_max_keys": ("10000", _int(1, 1_000_000)),
    "event_max_key_length": ("1024", _int(1, 1_000_000)),
    "log_level": ("info", _log_level),
    "flink_parallelism": ("1", _int(1, 1024)),
    "flink_jvm_heap": ("256m", _jvm_size),
    "flink_checkpoint_seconds": ("10", _float(0.1, 86400)),
    "flink_state_backend": ("hashmap", _state_backend),
    "flink_checkpoint_dir": ("var/flink-checkpoints", _nonempty),
    "flink_lateness_seconds": ("60", _int(0, 86400)),
    "session_gap_minutes": ("30", _int(1, 24 * 60)),
    "flink_jars_dir": ("var/flink-jars", _nonempty),
    "flink_rest_port": ("8081", _port),
    "flink_metrics_port": ("9105", _port),
    # issue 10: freshness and reconciliation
    "heartbeat_seconds": ("5", _float(0.05, 3600)),
    "reconcile_interval_seconds": ("3600", _float(0, 7 * 86400)),
    "reconcile_hours": ("24", _int(1, 24 * 366)),
    "reconcile_settle_seconds": ("300", _float(0, 86400)),
    # issue 10: limits
    "capture_rate_limits": ("true", _bool),
    "capture_redis_url": ("redis://127.0.0.1:6379/0", _redis_url),
    "capture_redis_prefix": ("ua:limits:", _nonempty),
    "capture_project_events_per_second": ("10000", _float(0.001, 1e9)),
    "capture_project_burst": ("100000", _int(1, 1_000_000_000)),
    "capture_distinct_id_events_per_second": ("1000", _float(0.001, 1e9)),
    "capture_distinct_id_burst": ("10000", _int(1, 1_000_000_000)),
    "capture_overflow_events_per_second": ("100", _float(0.001, 1e9)),
    "capture_overflow_burst": ("1000", _int(1, 1_000_000_000)),
    "capture_amplitude_max_events": ("2000", _int(1, 1_000_000)),
    "query_key_concurrency": ("4", _int(1, 10_000)),
    "query_max_memory_bytes": (str(4 * 1024 * _MB), _int(_MB, 1024 * 1024 * _MB)),
    "query_max_rows_to_read": ("1000000000", _int(1, 10**15)),
    "query_endpoint_limits": ("{}", _endpoint_limits),
    # issue 10: broker
    "kafka_compression": ("none", _compression),
    # issue 11: the web app
    "live_poll_seconds": ("1.0", _float(0.05, 60)),
    "web_dist_dir": (str(Path(__file__).resolve().parent.parent / "web" / "dist"), _nonempty),
    # issue 12: exports
    "events_export_chunk_rows": ("10000", _int(1, 1_000_000)),
    # issue 12: cohorts
    "cohort_refresh_seconds": ("3600", _float(0, 30 * 86400)),
}

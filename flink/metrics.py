"""The Flink job's metrics on Prometheus `/metrics`, read from Flink's REST API (README, Flink job).

`python -m flink.job` serves them itself on FLINK_METRICS_PORT from its mini-cluster's REST API on
FLINK_REST_PORT. For a job on a Flink cluster, whose submitting client exits, run
`python -m flink.metrics --rest-url http://jobmanager:8081`. Every few seconds a poll reads the jobs
overview, the job's checkpoints and restarts, and a few metrics of its source, window and sink operators
(summed over subtasks; watermarks: the lowest); `/metrics` serves the last poll. A failed poll is counted,
logged once per distinct error, and never stops the job.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from urllib.request import urlopen

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

JOB_NAME = "user-analytics-sessions"
POLL_SECONDS = 5.0
TIMEOUT_SECONDS = 5.0
LATE_SINK = "late_sink"

# (kind, pattern with the operator's name) of the operator metrics read, among the ids a vertex lists:
# `Source__KafkaSource-default_catalog_default_database_events_src.numRecordsIn`,
# `late_sink[21]__Writer.numRecordsSend`, `GlobalWindowAggregate[17].currentInputWatermark`, ...
OPERATOR_METRICS = [
    ("records_in", re.compile(r"Source__\w+-default_catalog_default_database_(\w+)\.numRecordsIn")),
    ("records_out", re.compile(r"Source__\w+-default_catalog_default_database_(\w+)\.numRecordsOut")),
    ("watermark", re.compile(r"Source__\w+-default_catalog_default_database_(\w+)\.currentOutputWatermark")),
    ("pending", re.compile(r"Source__\w+-default_catalog_default_database_(\w+)\.pendingRecords")),
    ("records_in", re.compile(r"(\w+)\[\d+\]__Writer\.numRecordsIn")),
    ("records_out", re.compile(r"(\w+)\[\d+\]__Writer\.numRecordsSend")),
    ("watermark", re.compile(r"((?:Global)?WindowAggregate)\[\d+\]\.currentInputWatermark")),
]


def wanted_metrics(ids: list[str]) -> list[tuple[str, str, str]]:
    """(kind, operator, metric id) of the ids that OPERATOR_METRICS reads."""
    return [(kind, m[1], metric) for metric in ids for kind, pattern in OPERATOR_METRICS
            if (m := pattern.fullmatch(metric))]  # fmt: skip


@dataclass(frozen=True)
class Poll:
    """What one poll of the REST API found; times are epoch ms, as Flink gives them."""

    found: bool = False
    running: bool = False
    started_ms: float = 0.0
    restarts: float | None = None
    completed: int = 0
    failed: int = 0
    last_completed_ms: float | None = None
    last_duration_ms: float | None = None
    last_size_bytes: float | None = None
    operators: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> operator -> value


class FlinkMetrics(Collector):
    """poll_forever() (in a thread) reads the REST API; collect() turns the last poll into `ua_flink_*`."""

    def __init__(self, rest_url: str, job_name: str = JOB_NAME) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.job_name = job_name
        self.last = Poll()
        self.errors = 0
        self._error: str | None = None

    def _get(self, path: str) -> Any:
        with urlopen(self.rest_url + path, timeout=TIMEOUT_SECONDS) as response:
            return json.load(response)

    def _operators(self, job: str) -> dict[str, dict[str, float]]:
        operators: dict[str, dict[str, float]] = {}
        for vertex in self._get(f"/jobs/{job}")["vertices"]:
            path = f"/jobs/{job}/vertices/{vertex['id']}/subtasks/metrics"
            wanted = wanted_metrics([metric["id"] for metric in self._get(path)])
            if not wanted:  # nothing listed until the tasks run
                continue
            values = self._get(path + "?get=" + ",".join(quote(metric, safe="") for _, _, metric in wanted))
            by_id = {v["id"]: v for v in values}
            for kind, operator, metric in wanted:
                if metric not in by_id:
                    continue
                value = by_id[metric]["min" if kind == "watermark" else "sum"]
                if kind != "watermark" or value > 0:  # Long.MIN_VALUE: no watermark yet
                    operators.setdefault(kind, {})[operator] = value
        return operators

    def poll(self) -> Poll:
        jobs = [j for j in self._get("/jobs/overview")["jobs"] if j["name"] == self.job_name]
        if not jobs:
            return Poll()
        job = max(jobs, key=lambda j: (j["state"] == "RUNNING", j["start-time"]))
        jid = job["jid"]
        checkpoints = self._get(f"/jobs/{jid}/checkpoints")
        latest = (checkpoints.get("latest") or {}).get("completed") or {}
        restarts = self._get(f"/jobs/{jid}/metrics?get=numRestarts")
        return Poll(
            found=True,
            running=job["state"] == "RUNNING",
            started_ms=job["start-time"],
            restarts=float(restarts[0]["value"]) if restarts else None,
            completed=checkpoints["counts"]["completed"],
            failed=checkpoints["counts"]["failed"],
            last_completed_ms=latest.get("latest_ack_timestamp"),
            last_duration_ms=latest.get("end_to_end_duration"),
            last_size_bytes=latest.get("state_size"),
            operators=self._operators(jid),
        )

    def poll_once(self) -> None:
        """One poll. A failure empties the metrics (job running 0), is counted, and is logged if new."""
        try:
            self.last = self.poll()
        except Exception as exc:  # whatever the REST API does, the job goes on
            self.last = Poll()
            self.errors += 1
            error = f"{type(exc).__name__}: {exc}"
            if error != self._error:
                print(f"flink metrics: reading {self.rest_url} failed: {error}", flush=True)
            self._error = error
        else:
            if self._error is not None:
                print(f"flink metrics: {self.rest_url} answers again", flush=True)
            self._error = None

    def poll_forever(self, interval: float = POLL_SECONDS) -> None:
        while True:
            self.poll_once()
            time.sleep(interval)

    def collect(self) -> Iterator[Metric]:
        poll, now_ms = self.last, time.time() * 1000
        yield GaugeMetricFamily(
            "ua_flink_job_running", "1 while the job is RUNNING, else 0", value=int(poll.running)
        )
        yield CounterMetricFamily(
            "ua_flink_scrape_errors", "Polls of Flink's REST API that failed", value=self.errors
        )
        if not poll.found:
            return
        if poll.restarts is not None:
            yield CounterMetricFamily(
                "ua_flink_job_restarts", "Restarts of the running job", value=poll.restarts
            )
        yield CounterMetricFamily(
            "ua_flink_checkpoints_completed", "Checkpoints completed", value=poll.completed
        )
        yield CounterMetricFamily("ua_flink_checkpoints_failed", "Checkpoints failed", value=poll.failed)
        yield GaugeMetricFamily(
            "ua_flink_last_checkpoint_age_seconds",
            "Seconds since the last completed checkpoint (since the job started while it has none)",
            value=max(0.0, now_ms - (poll.last_completed_ms or poll.started_ms)) / 1000,
        )
        if poll.last_completed_ms is not None:
            yield GaugeMetricFamily(
                "ua_flink_last_checkpoint_duration_seconds",
                "Trigger to completion of the last completed checkpoint",
                value=(poll.last_duration_ms or 0) / 1000,
            )
            yield GaugeMetricFamily(
                "ua_flink_last_checkpoint_size_bytes",
                "State size of the last completed checkpoint",
                value=poll.last_size_bytes or 0,
            )
        families = [
            (CounterMetricFamily, "ua_flink_records_in", "Records in (source: read from Kafka)",
             "records_in", lambda v: v),
            (CounterMetricFamily, "ua_flink_records_out", "Records out (sink: sent to Kafka)",
             "records_out", lambda v: v),
            (GaugeMetricFamily, "ua_flink_watermark_lag_seconds", "Now minus the operator's watermark",
             "watermark", lambda v: (now_ms - v) / 1000),
            (GaugeMetricFamily, "ua_flink_source_pending_records",
             "Records the source has yet to read, by the broker's end offsets", "pending", lambda v: v),
        ]  # fmt: skip
        for kind_of_family, name, doc, kind, value in families:
            family = kind_of_family(name, doc, labels=["operator"])
            for operator, raw in sorted(poll.operators.get(kind, {}).items()):
                family.add_metric([operator], value(raw))
            yield family
        late = poll.operators.get("records_out", {}).get(LATE_SINK)
        if late is not None:
            yield CounterMetricFamily("ua_flink_late_events", "Late events sent to late_events", value=late)


def serve(rest_url: str, host: str, port: int, job_name: str = JOB_NAME) -> FlinkMetrics:
    """`/metrics` on host:port, bound now (a busy port fails at once); then start_polling()."""
    metrics = FlinkMetrics(rest_url, job_name)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    start_http_server(port, host, registry=registry)
    return metrics


def start_polling(metrics: FlinkMetrics, interval: float = POLL_SECONDS) -> None:
    threading.Thread(target=metrics.poll_forever, args=(interval,), name="flink-metrics", daemon=True).start()


def main() -> None:
    from workers.settings import Settings

    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m flink.metrics", description=__doc__)
    parser.add_argument("--rest-url", default=f"http://127.0.0.1:{settings.flink_rest_port}")
    parser.add_argument("--host", default=settings.metrics_host, help="where /metrics listens (METRICS_HOST)")
    parser.add_argument("--port", type=int, default=settings.flink_metrics_port, help="(FLINK_METRICS_PORT)")
    parser.add_argument("--interval", type=float, default=POLL_SECONDS, help="seconds between polls")
    args = parser.parse_args()
    metrics = serve(args.rest_url, args.host, args.port)
    print(f"flink metrics: /metrics on {args.host}:{args.port} from {args.rest_url}", flush=True)
    metrics.poll_forever(args.interval)


if __name__ == "__main__":
    main()

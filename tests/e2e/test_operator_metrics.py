"""Every metric that config/prometheus/alerts.yml and config/grafana/*.json name exists on a running worker.

The real workers run as subprocesses (capture, persons, writer with the query API, dlq) and their /metrics
pages are scraped: a HELP/TYPE line counts, since a labelled metric without children has no samples. The
Flink job's `ua_flink_*` are checked against flink/metrics.py's collector (fed one complete poll) instead
of starting Flink.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from flink.metrics import LATE_SINK, FlinkMetrics, Poll
from tests.components import Tansu, create_database, drop_database
from tests.faults.stack import Stack
from tests.operator_files import SCRAPE_SERIES, exposed, named_metrics, serves

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.clickhouse]

WORKERS = ("capture", "persons", "writer", "dlq")

# named by the operator files, served only once the other branches of issue 10 are merged


@pytest.fixture(scope="module")
async def pages(
    module_broker: Tansu, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """worker -> its /metrics page, from the running workers."""
    directory: Path = tmp_path_factory.mktemp("operator-metrics")
    dsn = await create_database()
    try:
        with Stack(directory, module_broker.bootstrap, dsn, WORKERS) as stack:
            pages: dict[str, str] = {}
            async with aiohttp.ClientSession() as http:
                for name in WORKERS:
                    url = stack.url(f"{name.upper()}_METRICS_PORT", "/metrics")
                    async with http.get(url) as response:
                        assert response.status == 200
                        pages[name] = await response.text()
            yield pages
    finally:
        await drop_database(dsn)


def flink_page() -> str:
    """The Flink job's /metrics after a poll that found everything (running, checkpointed, every operator
    kind reported)."""
    now_ms = time.time() * 1000
    metrics = FlinkMetrics("http://127.0.0.1:1")
    metrics.last = Poll(found=True, running=True, started_ms=now_ms - 60_000, restarts=0, completed=3,
                        failed=0, last_completed_ms=now_ms - 5_000, last_duration_ms=120,
                        last_size_bytes=4096,
                        operators={"records_in": {"events_src": 10}, "records_out": {LATE_SINK: 1},
                                   "watermark": {"events_src": now_ms - 61_000}, "pending": {"events_src": 0}})  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return generate_latest(registry).decode()


def test_every_metric_the_alerts_and_dashboards_name_is_served(pages: dict[str, str]) -> None:
    served = {name: exposed(page) for name, page in pages.items()}
    flink = exposed(flink_page())
    missing = {}
    for metric, where in sorted(named_metrics().items()):
        if metric in SCRAPE_SERIES:
            continue
        if metric.startswith("ua_flink_"):
            found = serves(flink, metric)
        else:
            found = any(serves(names, metric) for names in served.values())
        if not found:
            missing[metric] = sorted(where)
    assert not missing, f"named by the operator files, served by no worker: {missing}"


def test_the_scrape_sees_what_main_serves(pages: dict[str, str]) -> None:
    """The scrape is real: each page declares its worker's metrics, labelled ones without samples too."""
    assert serves(exposed(pages["capture"]), "ua_capture_requests_total")
    assert serves(exposed(pages["writer"]), "ua_dead_letter_messages_total")
    assert "ua_dead_letter_messages_total{" not in pages["writer"]  # no children yet: HELP/TYPE only
    assert serves(exposed(pages["dlq"]), "ua_dlq_messages")
    for page in pages.values():
        assert serves(exposed(page), "process_start_time_seconds")

"""Freshness and lag (issue 10) on the real workers: heartbeats keep ua_pipeline_freshness_seconds low at
rest; it grows while the writer is stopped and recovers after it restarts; the writer group's lag that
`python -m workers status` reports while it is stopped is exactly what it stores once back."""

from __future__ import annotations

import asyncio
import math
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.components import Tansu, wait_until
from tests.faults.stack import Stack

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.clickhouse]

PARTITIONS = 4
AT_REST_SECONDS = 3.0  # "a few seconds": heartbeats every 0.5 s, the writer's batches close after 0.2 s


async def metrics(stack: Stack, worker: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A worker's /metrics: (name, sorted labels) -> value."""
    async with aiohttp.ClientSession() as http:
        async with http.get(stack.url(f"{worker.upper()}_METRICS_PORT", "/metrics")) as answer:
            text = await answer.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def freshness(stack: Stack) -> float:
    return (await metrics(stack, "writer"))[("ua_pipeline_freshness_seconds", ())]


async def lag_of(stack: Stack, worker: str, topic: str) -> dict[int, float]:
    return {
        int(dict(labels)["partition"]): value
        for (name, labels), value in (await metrics(stack, worker)).items()
        if name == "ua_consumer_lag_messages" and dict(labels)["topic"] == topic
    }


def status(stack: Stack) -> str:
    done = subprocess.run([sys.executable, "-m", "workers", "status"], env=stack.env, capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout


def status_lag(text: str, group: str, topic: str) -> list[int]:
    match = re.search(rf"^  {group} +{topic} +(\d+)  ([\d ]+)$", text, re.MULTILINE)
    assert match, text
    return [int(n) for n in match.group(2).split()]


async def test_freshness_at_rest_while_the_writer_is_stopped_and_after(
    broker: Tansu, dsn: str, tmp_path: Path
) -> None:
    with Stack(tmp_path, broker.bootstrap, dsn, heartbeat_seconds=0.5, writer_batch_max_seconds=0.2,
               persons_batch_max_seconds=0.05) as stack:  # fmt: skip

        async def fresh() -> bool:
            value = await freshness(stack)
            return not math.isnan(value) and value < AT_REST_SECONDS

        assert await wait_until(fresh, timeout=60, interval=0.2)
        at_rest = []
        for _ in range(10):
            at_rest.append(await freshness(stack))
            await asyncio.sleep(0.5)
        assert max(at_rest) < AT_REST_SECONDS, at_rest
        partitions = await metrics(stack, "writer")
        assert sorted(
            dict(k[1])["partition"] for k in partitions if k[0] == "ua_pipeline_partition_freshness_seconds"
        ) == [str(p) for p in range(PARTITIONS)]
        sources = await stack.sql("SELECT DISTINCT source FROM heartbeats")
        assert len(sources) == 1
        first_capture = sources[0]["source"]

        # the writer stops; capture keeps beating for a while, then stops too, so that the backlog is fixed
        stack.kill("writer", signal.SIGTERM)
        assert stack.wait_exit("writer") == 0
        stopped = datetime.now(UTC)
        stopped_at = time.monotonic()
        await asyncio.sleep(3)
        stack.kill("capture", signal.SIGTERM)
        assert stack.wait_exit("capture") == 0

        async def persons_caught_up() -> bool:
            return await lag_of(stack, "persons", "events_raw") == dict.fromkeys(range(PARTITIONS), 0)

        assert await wait_until(persons_caught_up, timeout=30, interval=0.2)
        await asyncio.sleep(1.5)  # persons reports what it produced to events every 0.5 s
        report = status(stack)
        assert status_lag(report, "persons", "events_raw") == [0] * PARTITIONS
        backlog = status_lag(report, "writer", "events")
        assert all(n >= 6 for n in backlog), report  # 0.5 s heartbeats over 3 s at least
        assert "freshness and reconciliation: the writer's /metrics does not answer" in report

        stack.start("capture")
        stack.start("writer")
        down = time.monotonic() - stopped_at
        seen: list[float] = []

        async def recovered() -> bool:
            value = await freshness(stack)
            if not math.isnan(value):
                seen.append(value)
            return bool(seen) and value < AT_REST_SECONDS

        assert await wait_until(recovered, timeout=60, interval=0.1)
        assert seen[0] >= down, (seen[:5], down)  # it had grown while the writer was stopped

        # what the writer stored once back, of the first capture's heartbeats, is exactly the lag reported
        rows = await stack.sql(
            "SELECT partition, count() AS n FROM heartbeats WHERE source = '" + first_capture + "'"
            f" AND inserted_at > toDateTime64('{stopped:%Y-%m-%d %H:%M:%S.%f}', 6, 'UTC')"
            " GROUP BY partition ORDER BY partition"
        )
        assert [row["n"] for row in rows] == backlog

        # with nothing produced, every stage's lag comes down to exactly 0
        stack.kill("capture", signal.SIGTERM)
        assert stack.wait_exit("capture") == 0

        async def writer_caught_up() -> bool:
            return await lag_of(stack, "writer", "events") == dict.fromkeys(range(PARTITIONS), 0)

        assert await wait_until(writer_caught_up, timeout=30, interval=0.2)

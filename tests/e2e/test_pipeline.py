"""The whole stack as subprocesses: real SDKs → capture → Tansu → persons → writer → chDB → /api/sql."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import posthog
import pytest
from amplitude import Amplitude, BaseEvent, Config

from tests.components import Tansu, create_database, drop_database, free_port, wait_for_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

TOKEN = "e2e-token"
API_KEY = "e2e-api-key"
WORKER_NAMES = ("capture", "persons", "writer")


@dataclass
class Stack:
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def port(self, name: str) -> int:
        return int(self.env[name])

    @property
    def capture_url(self) -> str:
        return f"http://127.0.0.1:{self.port('CAPTURE_PORT')}"

    def log(self, worker: str) -> list[dict[str, object]]:
        lines = (self.logs / f"{worker}.log").read_bytes().splitlines()
        return [orjson.loads(line) for line in lines if line.startswith(b"{")]


@pytest.fixture(scope="module")
async def stack(module_broker: Tansu, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e")
    dsn = await create_database()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": module_broker.bootstrap,
        "KAFKA_TOPIC_PARTITIONS": "4",
        "KAFKA_SESSION_TIMEOUT_SECONDS": "6",
        "POSTGRES_DSN": dsn,
        "CLICKHOUSE_URL": f"chdb://{tmp}/chdb",
        "CAPTURE_PORT": str(free_port()),
        "QUERY_PORT": str(free_port()),
        "CAPTURE_METRICS_PORT": str(free_port()),
        "PERSONS_METRICS_PORT": str(free_port()),
        "WRITER_METRICS_PORT": str(free_port()),
        "DEV_API_KEY": API_KEY,
        "DRAIN_TIMEOUT_SECONDS": "20",
        "LOG_LEVEL": "info",
        "HEARTBEAT_SECONDS": "3600",  # issue 10: no heartbeat among the messages this test counts
        "CAPTURE_REDIS_PREFIX": f"ua-test-{uuid.uuid4().hex}:",  # rate limits of this run's own
    }
    processes = start_workers(env, tmp)
    running = Stack(env, processes, tmp)
    try:
        for port in ("CAPTURE_PORT", "QUERY_PORT", "PERSONS_METRICS_PORT", "WRITER_METRICS_PORT"):
            wait_for_port(running.port(port), timeout=60)
        yield running
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        await drop_database(dsn)


def start_workers(env: dict[str, str], logs: Path) -> dict[str, subprocess.Popen[bytes]]:
    admin = [sys.executable, "-m", "workers", "admin", "create-project", "--name", "e2e"]
    subprocess.run([*admin, "--token", TOKEN, "--api-key", API_KEY], env=env, check=True, capture_output=True)
    processes = {}
    for name in WORKER_NAMES:
        with open(logs / f"{name}.log", "wb") as out:
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "workers", name], env=env, stdout=out, stderr=subprocess.STDOUT
            )
    return processes


async def sql(stack: Stack, query: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{stack.port('QUERY_PORT')}/api/sql"
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with http.post(url, json={"query": query}, headers=headers) as response:
            body = await response.json()
            assert response.status == 200, body
            return list(body["rows"])


async def metrics(stack: Stack, port: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{stack.port(port)}/metrics") as response:
            text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def clickhouse_time(value: object) -> datetime:
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


@dataclass
class Sent:
    event: str
    distinct_id: str
    timestamp: datetime
    properties: dict[str, object]


def send_posthog(stack: Stack, start: datetime) -> dict[str, Sent]:
    """1,000 events through the PyPI posthog SDK: 600 plain, 400 gzip; /batch/ is what it speaks."""
    sent = {}
    for client_no, gzip in enumerate((False, True)):
        client = posthog.Posthog(TOKEN, host=stack.capture_url, gzip=gzip, flush_at=100, max_retries=0)
        for i in range(600 if not gzip else 400):
            n = client_no * 1000 + i
            sent_event = Sent(
                event=("$pageview", "signed_up", "purchase")[i % 3],
                distinct_id=f"ph-user-{i % 37}",
                timestamp=start + timedelta(seconds=n),
                properties={"n": n, "plan": "pro" if i % 2 else "free", "nested": {"a": [1, 2]}},
            )
            event_uuid = client.capture(
                sent_event.event,
                distinct_id=sent_event.distinct_id,
                properties=sent_event.properties,
                timestamp=sent_event.timestamp,
            )
            assert event_uuid
            sent[event_uuid] = sent_event
        client.flush()
        client.shutdown()
    return sent


def send_amplitude(stack: Stack, start: datetime) -> list[Sent]:
    """200 events through the PyPI amplitude-analytics SDK, half of them anonymous (device id only)."""
    results: list[int] = []
    config = Config(
        server_url=f"{stack.capture_url}/2/httpapi",
        flush_queue_size=50,
        callback=lambda event, code, message: results.append(code),
    )
    client = Amplitude(TOKEN, config)
    sent = []
    for i in range(200):
        when = start + timedelta(seconds=i)
        user_id = f"amp-user-{i % 11}" if i % 2 else None
        device_id = f"device-{i % 11:05d}"  # each user on a device of their own: linked, never merged
        client.track(
            BaseEvent(
                event_type="amp_click",
                user_id=user_id,
                device_id=device_id,
                time=int(when.timestamp() * 1000),
                insert_id=str(uuid.uuid4()),
                event_properties={"n": i},
            )
        )
        sent.append(Sent("amp_click", user_id or device_id, when, {"n": i}))
    client.flush()
    client.shutdown()
    assert results == [200] * 200, "the SDK's callback saw a failure"
    return sent


async def test_sdk_events_arrive_once_with_persons_and_every_worker_reports_it(stack: Stack) -> None:
    start = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    posthog_sent = send_posthog(stack, start)
    amplitude_sent = send_amplitude(stack, start + timedelta(hours=1))
    assert len(posthog_sent) == 1000 and len(amplitude_sent) == 200

    async def all_written() -> bool:
        rows = await sql(stack, "SELECT count() AS n FROM events")
        return rows[0]["n"] == 1200

    await wait_until(all_written, timeout=90, interval=0.5)
    rows = await sql(
        stack,
        "SELECT toString(uuid) AS uuid, project_id, event, distinct_id, toString(person_id) AS person_id, "
        "timestamp, properties, lib FROM events FINAL",
    )
    assert len(rows) == 1200, "nothing extra, nothing missing, each event once"

    conn = await asyncpg.connect(stack.env["POSTGRES_DSN"])
    try:
        project_id = await conn.fetchval("SELECT id FROM projects WHERE api_token = $1", TOKEN)
        persons = {
            r["distinct_id"]: str(r["person_id"])
            for r in await conn.fetch("SELECT distinct_id, person_id FROM person_distinct_ids")
        }
    finally:
        await conn.close()

    by_uuid = {row["uuid"]: row for row in rows}
    for event_uuid, sent in posthog_sent.items():
        row = by_uuid[event_uuid]
        assert (row["event"], row["distinct_id"], row["project_id"]) == (
            sent.event,
            sent.distinct_id,
            project_id,
        )
        assert row["person_id"] == persons[sent.distinct_id]
        properties = orjson.loads(str(row["properties"]))
        assert {k: properties[k] for k in sent.properties} == sent.properties
        # same clock on both sides: skew correction may move it by the send latency only
        assert abs(clickhouse_time(row["timestamp"]) - sent.timestamp) < timedelta(seconds=2)
        assert str(row["lib"]).startswith("posthog-python")

    amplitude_rows = sorted(
        (r for r in rows if r["event"] == "amp_click"), key=lambda r: orjson.loads(str(r["properties"]))["n"]
    )
    assert len(amplitude_rows) == 200
    for row, sent in zip(amplitude_rows, amplitude_sent, strict=True):
        assert (row["distinct_id"], row["project_id"]) == (sent.distinct_id, project_id)
        assert row["person_id"] == persons[sent.distinct_id]
        assert abs(clickhouse_time(row["timestamp"]) - sent.timestamp) < timedelta(seconds=2)

    posthog_ids = {sent.distinct_id for sent in posthog_sent.values()}
    assert len({persons[d] for d in posthog_ids}) == len(posthog_ids) == 37, "one person per distinct id"
    for k in range(11):
        assert persons[f"amp-user-{k}"] == persons[f"device-{k:05d}"], "user and device linked"
    people = len(posthog_ids) + 11

    # ClickHouse's persons and distinct ids agree with Postgres
    async def persons_written() -> bool:
        rows = await sql(stack, "SELECT count() AS n FROM persons FINAL WHERE is_deleted = 0")
        return rows[0]["n"] == people

    assert await wait_until(persons_written, timeout=30, interval=0.5)
    mapping = await sql(
        stack,
        "SELECT distinct_id, toString(argMax(person_id, version)) AS person_id FROM person_distinct_ids"
        " GROUP BY distinct_id",
    )
    assert {r["distinct_id"]: r["person_id"] for r in mapping} == persons

    capture = await metrics(stack, "CAPTURE_METRICS_PORT")
    assert capture['ua_capture_events_total{outcome="accepted",protocol="posthog"}'] == 1000
    assert capture['ua_capture_events_total{outcome="accepted",protocol="amplitude"}'] == 200
    persons_metrics = await metrics(stack, "PERSONS_METRICS_PORT")
    assert persons_metrics['ua_consumer_messages_total{outcome="ok",stage="persons"}'] == 1200
    assert persons_metrics["ua_persons_created_total"] == people
    assert not any(name.startswith("ua_capture_") for name in persons_metrics), "only its own metrics"
    assert persons_metrics["process_resident_memory_bytes"] > 0
    writer = await metrics(stack, "WRITER_METRICS_PORT")
    assert writer['ua_clickhouse_inserted_rows_total{table="events"}'] == 1200


async def test_workers_stop_cleanly_on_sigterm(stack: Stack) -> None:
    for process in stack.processes.values():
        process.send_signal(signal.SIGTERM)
    for name, process in stack.processes.items():
        assert process.wait(timeout=30) == 0, f"{name} exited {process.returncode}"
        events = [line["event"] for line in stack.log(name)]
        assert events[0] == "worker_starting" and events[-1] == "worker_stopped", (name, events)
        assert "worker_draining" in events

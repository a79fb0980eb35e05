"""Rate limits and hot keys on the whole stack as subprocesses (capture, persons, writer; Redis, Tansu,
Postgres, chDB): the real SDKs back off from 429s and in the end deliver everything, two capture processes
share one limit through Redis, and a hot distinct id goes through events_overflow and is stored once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import posthog
import pytest
from amplitude import Amplitude, BaseEvent, Config

from tests.components import Tansu, create_database, drop_database, wait_for_port, wait_until
from tests.faults.stack import TOKEN, Stack, service_ports
from workers.projects import Project, ensure_project

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.redis]

HOT_KEY_BURST = 40  # CAPTURE_OVERFLOW_BURST of this stack (and a rate that adds nothing during the tests)


@pytest.fixture(scope="module")
async def stack(module_broker: Tansu, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    directory = tmp_path_factory.mktemp("limits")
    dsn = await create_database()
    settings = {"capture_overflow_events_per_second": 0.001, "capture_overflow_burst": HOT_KEY_BURST}
    try:
        with Stack(
            directory, module_broker.bootstrap, dsn, ("capture", "persons", "writer"), **settings
        ) as running:
            yield running
    finally:
        await drop_database(dsn)


async def project(stack: Stack, **limits: float) -> Project:
    conn = await asyncpg.connect(stack.env["POSTGRES_DSN"])
    try:
        made = await ensure_project(conn, "limits", api_token=f"phc_{uuid.uuid4().hex}")
        for column, value in limits.items():
            await conn.execute(f"UPDATE projects SET {column} = $1 WHERE id = $2", value, made.id)
    finally:
        await conn.close()
    return made


async def metric(stack: Stack, port: str, sample: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(stack.url(port, "/metrics")) as response:
        text = await response.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(sample + " "))


async def stored(stack: Stack, project_id: int, expected: int) -> int:
    async def count() -> int:
        n = await stack.count("events", f"project_id = {project_id}")
        return n if n >= expected else 0

    await wait_until(count, timeout=60, interval=0.5)
    return await stack.count("events", f"project_id = {project_id}")


def send_posthog(url: str, token: str) -> list[object]:
    """300 events in batches of 100 into a project that takes 100 at once and 50/s: 429s, then Retry-After."""
    errors: list[object] = []
    client = posthog.Posthog(token, host=url, flush_at=100, on_error=lambda e, _: errors.append(e))
    for n in range(300):
        client.capture("ph_event", distinct_id=f"ph-user-{n % 30}", properties={"n": n})
    client.flush()
    client.shutdown()
    return errors


def send_amplitude(url: str, token: str) -> list[int]:
    """200 events of 10 users in requests of 100 into a project whose users each take 10 at once and 1/s:
    the second request is throttled, the SDK resends its events 30 s later."""
    codes: list[int] = []
    everything = threading.Event()

    def callback(event: BaseEvent, code: int, message: str | None = None) -> None:
        codes.append(code)
        if len(codes) == 200:
            everything.set()

    config = Config(server_url=url + "/2/httpapi", flush_queue_size=100, flush_interval_millis=100,
                    callback=callback)  # fmt: skip
    client = Amplitude(token, config)
    for n in range(200):
        client.track(
            BaseEvent(event_type="amp_event", user_id=f"amp-user-{n % 10}", event_properties={"n": n})
        )
    everything.wait(75)
    client.shutdown()
    return codes


async def test_the_posthog_and_amplitude_sdks_back_off_and_in_the_end_deliver_everything(
    stack: Stack,
) -> None:
    ph = await project(stack, events_per_second=50, events_burst=100)
    amp = await project(stack, distinct_id_events_per_second=1, distinct_id_burst=10)
    url = stack.url("CAPTURE_PORT", "")
    errors, codes = await asyncio.gather(
        asyncio.to_thread(send_posthog, url, ph.api_token),
        asyncio.to_thread(send_amplitude, url, amp.api_token),
    )
    assert errors == []
    assert codes == [200] * 200
    assert await stored(stack, ph.id, 300) == 300
    assert await stored(stack, amp.id, 200) == 200
    limited = "ua_capture_rate_limited_events_total"
    assert await metric(stack, "CAPTURE_METRICS_PORT", f'{limited}{{limit="project"}}') >= 100
    assert await metric(stack, "CAPTURE_METRICS_PORT", f'{limited}{{limit="distinct_id"}}') >= 90


async def test_a_hot_key_lands_in_overflow_and_is_stored_exactly_once(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.env["POSTGRES_DSN"])
    project_id = await conn.fetchval("SELECT id FROM projects WHERE api_token = $1", TOKEN)
    await conn.close()
    hot = [{"event": "hot", "distinct_id": "hot-user", "uuid": str(uuid.uuid4())} for _ in range(60)]
    cold = [{"event": "cold", "distinct_id": f"cold-{n}", "uuid": str(uuid.uuid4())} for n in range(5)]
    overflow = 'ua_kafka_produced_messages_total{topic="events_overflow"}'
    assert await metric(stack, "CAPTURE_METRICS_PORT", overflow) == 0
    assert await stack.send_posthog(hot + cold) == 200
    assert await stack.send_posthog(hot) == 200  # a resend: its hot-key bucket is empty, all 60 overflow
    assert await metric(stack, "CAPTURE_METRICS_PORT", overflow) == 60 - HOT_KEY_BURST + 60
    assert await metric(stack, "CAPTURE_METRICS_PORT", "ua_capture_overflow_events_total") == 80
    where = f"project_id = {project_id} AND distinct_id = 'hot-user'"
    assert await stored(stack, project_id, 65) == 65
    rows = await stack.sql(f"SELECT count() AS n, uniqExact(uuid) AS uuids, uniqExact(person_id) AS persons"
                           f" FROM events FINAL WHERE {where}")  # fmt: skip
    assert rows == [{"n": 60, "uuids": 60, "persons": 1}]
    assert await stack.stored_uuids(where) == sorted(e["uuid"] for e in hot)


def start_capture(stack: Stack, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Another capture process of the stack's, on ports of its own."""
    port, metrics_port = sorted(service_ports(2))
    env = {**stack.env, "CAPTURE_PORT": str(port), "CAPTURE_METRICS_PORT": str(metrics_port)}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "workers", "capture"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    return process, port


async def test_two_capture_processes_share_one_limit(stack: Stack, tmp_path: Path) -> None:
    shared = await project(stack, events_per_second=0.001, events_burst=100)
    second, port = start_capture(stack, tmp_path / "capture-2.log")
    try:
        await asyncio.to_thread(wait_for_port, port, 30)
        first_url, second_url = stack.url("CAPTURE_PORT", "/batch/"), f"http://127.0.0.1:{port}/batch/"

        async def send(url: str, n: int) -> int:
            body = {
                "api_key": shared.api_token,
                "batch": [{"event": "e", "distinct_id": f"u{i}"} for i in range(n)],
            }
            async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
                return response.status

        statuses = [await send(first_url, 60), await send(second_url, 60), await send(second_url, 40),
                    await send(first_url, 1)]  # fmt: skip
    finally:
        second.terminate()
        second.wait(30)
    assert statuses == [200, 429, 200, 429]
    assert second.returncode == 0

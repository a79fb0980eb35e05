"""capture's rate limits served for real: Redis, Tansu, Postgres; the 429s each protocol gets, what reaches
events_raw, the per-process fallback without Redis, and that Redis's Lua script takes the local steps."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import redis.asyncio
import structlog
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from tests.components import REDIS_URL, free_port
from workers.capture.app import create_app, serve
from workers.capture.limits import Bucket, Limiter, LocalBuckets, Rates
from workers.kafka import EVENTS_OVERFLOW, EVENTS_RAW, Producer, start_producer
from workers.projects import Project, ProjectCache, ensure_project
from workers.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.redis]


@dataclasses.dataclass
class Capture:
    url: str
    http: aiohttp.ClientSession

    async def post(self, path: str, body: object) -> tuple[int, Any, str | None]:
        async with self.http.post(self.url + path, data=orjson.dumps(body)) as response:
            return response.status, await response.json(), response.headers.get("Retry-After")


@pytest.fixture(scope="module")
def settings(kafka_settings: Settings, pg_dsn: str) -> Settings:
    return dataclasses.replace(kafka_settings, postgres_dsn=pg_dsn, capture_amplitude_max_events=10)


@pytest.fixture(scope="module")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    producer = await start_producer(settings)
    yield producer
    await producer.stop()


async def serving(settings: Settings, producer: Producer, pool: asyncpg.Pool, limiter: Limiter):  # type: ignore[no-untyped-def]
    port = free_port()
    runner = await serve(
        create_app(settings, producer, ProjectCache(pool, 30), limiter), "127.0.0.1", port, 5
    )
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
async def capture(settings: Settings, producer: Producer, pool: asyncpg.Pool) -> AsyncIterator[Capture]:
    limiter = Limiter(redis.asyncio.Redis.from_url(REDIS_URL), f"ua-test-{uuid.uuid4().hex}:")
    runner, url = await serving(settings, producer, pool, limiter)
    async with aiohttp.ClientSession() as http:
        yield Capture(url, http)
    await runner.cleanup()
    await limiter.close()


async def project(pool: asyncpg.Pool, **limits: float) -> Project:
    """A project of its own; `limits` set its columns (events_per_second, events_burst, ...)."""
    made = await ensure_project(pool, "limits", api_token=f"phc_{uuid.uuid4().hex}")
    for column, value in limits.items():
        await pool.execute(f"UPDATE projects SET {column} = $1 WHERE id = $2", value, made.id)
    return made


def posthog(token: str, *distinct_ids: str) -> dict[str, Any]:
    return {"api_key": token, "batch": [{"event": "e", "distinct_id": d} for d in distinct_ids]}


def amplitude(token: str, *ids: tuple[str | None, str]) -> dict[str, Any]:
    events = [
        {"event_type": "e", "user_id": u, "device_id": d, "insert_id": uuid.uuid4().hex} for u, d in ids
    ]
    return {"api_key": token, "events": events}


def limited(limit: str) -> float:
    return REGISTRY.get_sample_value("ua_capture_rate_limited_events_total", {"limit": limit}) or 0.0


async def produced(settings: Settings, topic: str, project_id: int, count: int) -> list[dict[str, Any]]:
    """The project's events on the topic, from its start, once `count` of them are there (or 15 s passed)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(15):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found += [v for r in records if (v := orjson.loads(r.value))["project_id"] == project_id]
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return found


async def test_a_project_over_its_limit_gets_429s_while_another_keeps_getting_200s(
    capture: Capture, pool: asyncpg.Pool, settings: Settings
) -> None:
    noisy = await project(pool, events_per_second=0.001, events_burst=10)
    quiet = await project(pool)
    before = limited("project")
    assert (await capture.post("/batch/", posthog(noisy.api_token, *["a"] * 6)))[:2] == (200, {"status": 1})
    status, body, retry_after = await capture.post("/batch/", posthog(noisy.api_token, *["a"] * 6))
    assert (status, retry_after) == (429, "2000")  # 2 tokens short at 0.001/s
    assert body == {
        "type": "rate_limit_error",
        "code": "rate_limited",
        "detail": "over the project's rate limit (0.001 events/s per project, 1000 per distinct id); retry"
        " after 2000 s",
        "errors": [],
    }
    for _ in range(3):
        assert (await capture.post("/batch/", posthog(quiet.api_token, *["a"] * 20)))[0] == 200

    # Amplitude: the 4 events that fit are taken (in request order, a distinct id at a time), the rest named
    ids = [("user-1", "device-1"), (None, "device-2")] * 3
    status, body, retry_after = await capture.post("/2/httpapi", amplitude(noisy.api_token, *ids))
    assert (status, retry_after) == (429, "2000")
    assert body == {
        "code": 429,
        "error": "Too many requests for some devices and users",
        "eps_threshold": 1000,
        "throttled_devices": {"device-2": 2},
        "throttled_users": {},
        "throttled_events": [3, 5],
    }
    assert limited("project") - before == 6 + 2
    stored = await produced(settings, EVENTS_RAW, noisy.id, 10)
    assert sorted(e["distinct_id"] for e in stored) == ["a"] * 6 + ["device-2"] + ["user-1"] * 3
    assert len(await produced(settings, EVENTS_RAW, quiet.id, 60)) == 60
    assert (await capture.post("/2/httpapi", amplitude(quiet.api_token, *ids)))[:2] == (200, {
        "code": 200, "events_ingested": 6, "payload_size_bytes": len(orjson.dumps(amplitude(quiet.api_token, *ids))),
        "server_upload_time": pytest.approx(0, abs=10**13)})  # fmt: skip


async def test_one_distinct_id_over_its_limit_is_refused_and_the_others_are_not(
    capture: Capture, pool: asyncpg.Pool
) -> None:
    chatty = await project(pool, distinct_id_events_per_second=0.001, distinct_id_burst=5)
    before = limited("distinct_id")
    assert (await capture.post("/batch/", posthog(chatty.api_token, "a", "a", "a", "b")))[0] == 200
    status, body, retry_after = await capture.post("/batch/", posthog(chatty.api_token, "a", "a", "a", "b"))
    assert (status, retry_after, body["code"]) == (429, "1000", "rate_limited")
    assert body["detail"].startswith("over a distinct id's rate limit")
    assert limited("distinct_id") - before == 4  # a's 3 and b's 1 refused with them
    assert (await capture.post("/batch/", posthog(chatty.api_token, "b", "c")))[0] == 200
    status, body, _ = await capture.post(
        "/2/httpapi", amplitude(chatty.api_token, *[("a-user", "device-a")] * 7)
    )
    assert (status, body["throttled_users"], body["throttled_events"]) == (429, {"a-user": 2}, [5, 6])
    status, body, _ = await capture.post(
        "/2/httpapi", amplitude(chatty.api_token, *[("u-user", "device-a")] * 11)
    )
    assert (status, body) == (413, {"code": 413, "error": "Payload too large"})  # over 10 per request


async def test_a_hot_distinct_id_goes_to_events_overflow_without_a_key(
    pool: asyncpg.Pool, settings: Settings, producer: Producer
) -> None:
    hot_settings = dataclasses.replace(
        settings, capture_overflow_events_per_second=0.001, capture_overflow_burst=3
    )
    limiter = Limiter(redis.asyncio.Redis.from_url(REDIS_URL), f"ua-test-{uuid.uuid4().hex}:")
    runner, url = await serving(hot_settings, producer, pool, limiter)
    hot = await project(pool)
    try:
        async with aiohttp.ClientSession() as http:
            status, _, _ = await Capture(url, http).post(
                "/batch/", posthog(hot.api_token, *["hot"] * 5, "cold")
            )
    finally:
        await runner.cleanup()
        await limiter.close()
    assert status == 200
    assert (
        sorted(e["distinct_id"] for e in await produced(settings, EVENTS_RAW, hot.id, 4))
        == ["cold"] + ["hot"] * 3
    )
    assert [e["distinct_id"] for e in await produced(settings, EVENTS_OVERFLOW, hot.id, 2)] == ["hot"] * 2


async def test_without_redis_each_process_limits_alone_logs_one_warning_and_never_answers_5xx(
    pool: asyncpg.Pool, settings: Settings, producer: Producer
) -> None:
    nowhere = redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    limiter = Limiter(nowhere, "ua-test-unreachable:")
    runner, url = await serving(settings, producer, pool, limiter)
    small = await project(pool, events_per_second=0.001, events_burst=4)
    try:
        with structlog.testing.capture_logs() as logs:
            async with aiohttp.ClientSession() as http:
                statuses = [(await Capture(url, http).post("/batch/", posthog(small.api_token, "a", "b")))[0]
                            for _ in range(4)]  # fmt: skip
    finally:
        await runner.cleanup()
        await limiter.close()
    assert statuses == [200, 200, 429, 429]
    assert [line["event"] for line in logs if line["log_level"] == "warning"].count(
        "rate_limits_per_process"
    ) == 1


@pytest.mark.parametrize("whole", [True, False])
async def test_the_lua_script_takes_the_same_steps_as_the_local_buckets(whole: bool) -> None:
    """Rates so slow that the time between two calls adds nothing: the outcomes must be equal."""
    rates = Rates(Bucket(0.0001, 40), Bucket(0.0001, 10), Bucket(0.0001, 4))
    shared = Limiter(redis.asyncio.Redis.from_url(REDIS_URL), f"ua-test-{uuid.uuid4().hex}:")
    local = LocalBuckets()
    requests = [[("a", 3), ("b", 12)], [("a", 8)], [("a", 7), ("c", 2)], [("c", 30)], [("d", 60), ("e", 5)],
                [("f", 1)], [("a", 1)]]  # fmt: skip
    try:
        for counts in requests:
            keys = shared.keys(1, [d for d, _ in counts])
            by_redis = await shared.take(1, rates, counts, whole)
            by_process = local.take(keys, rates, [n for _, n in counts], whole)
            assert dataclasses.replace(by_redis, retry_after_ms=0) == dataclasses.replace(
                by_process, retry_after_ms=0
            )
            assert abs(by_redis.retry_after_ms - by_process.retry_after_ms) <= 10, counts
    finally:
        await shared.close()

"""capture served for real: Tansu, Postgres, the real PostHog and Amplitude SDKs, and every error answer."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gzip
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
import amplitude
import asyncpg
import orjson
import posthog
import pytest
from aiokafka import AIOKafkaConsumer
from lzstring import LZString
from prometheus_client import REGISTRY

from tests.components import Tansu, free_port, wait_for_port
from workers.capture.amplitude import INSERT_ID_NAMESPACE
from workers.capture.app import create_app, main, serve
from workers.kafka import EVENTS_RAW, Producer, Record, ensure_topics, start_producer
from workers.projects import ProjectCache, ensure_project
from workers.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

MAX_BODY = 1024 * 1024
MAX_EVENT = 64 * 1024
Consumed = tuple[bytes | None, dict[str, Any]]


class Collector:
    """Everything on events_raw since the start of the topic, consumed in the background."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(
            EVENTS_RAW, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        self.seen: list[Consumed] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    try:  # other tests may share the topic with anything at all
                        value = orjson.loads(record.value)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(value, dict):
                        self.seen.append((record.key, value))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()

    def of(self, distinct_id: str) -> list[Consumed]:
        return [(k, v) for k, v in self.seen if v.get("distinct_id") == distinct_id]

    async def wait_for(self, distinct_id: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        await until(lambda: len(self.of(distinct_id)) >= count, timeout)
        found = [v for _, v in self.of(distinct_id)]
        assert len(found) >= count, f"{len(found)} of {count} events for {distinct_id} arrived"
        return found


@dataclasses.dataclass
class Env:
    url: str
    token: str
    project_id: int
    settings: Settings
    http: aiohttp.ClientSession
    events: Collector
    pool: asyncpg.Pool

    async def post(self, path: str, body: object = None, **kwargs: Any) -> tuple[int, Any, Any]:
        if body is not None:
            kwargs["data"] = orjson.dumps(body)
        async with self.http.post(self.url + path, **kwargs) as response:
            return response.status, await response.json(content_type=None), response.headers

    async def assert_nothing_produced_for(self, distinct_id: str) -> None:
        """Send a sentinel with the same key (same partition): once it is here, anything earlier would be."""
        status, _, _ = await self.post(
            "/batch/", {"api_key": self.token, "batch": [{"event": "sentinel", "distinct_id": distinct_id}]}
        )
        assert status == 200
        events = await self.events.wait_for(distinct_id, 1)
        assert [e["event"] for e in events] == ["sentinel"]


@pytest.fixture(scope="module")
def settings(kafka_settings: Settings, pg_dsn: str) -> Settings:
    return dataclasses.replace(
        kafka_settings,
        postgres_dsn=pg_dsn,
        capture_max_body_bytes=MAX_BODY,
        capture_max_event_bytes=MAX_EVENT,
        kafka_produce_timeout_seconds=5,
    )


@pytest.fixture(scope="module")
async def env(settings: Settings) -> AsyncIterator[Env]:
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)
    token = f"phc_{uuid.uuid4().hex}"
    project = await ensure_project(pool, "capture-test", api_token=token)
    producer = await start_producer(settings)
    port = free_port()
    runner = await serve(create_app(settings, producer, ProjectCache(pool, 30)), "127.0.0.1", port, 5)
    collector = Collector(settings.kafka_bootstrap_servers)
    await collector.start()
    async with aiohttp.ClientSession() as http:
        yield Env(f"http://127.0.0.1:{port}", token, project.id, settings, http, collector, pool)
    await collector.stop()
    await runner.cleanup()
    await producer.stop()
    await pool.close()


async def until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---- the real SDKs ----


async def test_posthog_python_sdk_events_arrive_normalized_and_keyed(env: Env) -> None:
    user, anon = uid("py-user"), uid("py-anon")
    errors: list[object] = []

    def use_sdk(gzip_body: bool) -> None:
        client = posthog.Posthog(
            env.token, host=env.url, sync_mode=True, gzip=gzip_body, on_error=lambda e, _: errors.append(e)
        )
        client.capture(
            "$identify", distinct_id=user, properties={"$anon_distinct_id": anon, "$set": {"plan": "pro"}}
        )
        client.set(distinct_id=user, properties={"plan": "enterprise"})
        client.alias(previous_id=anon, distinct_id=user)
        client.capture(
            "Order Placed", distinct_id=user, properties={"total": 12.5}, groups={"company": "acme"}
        )
        client.shutdown()

    await asyncio.to_thread(use_sdk, False)
    await asyncio.to_thread(use_sdk, True)  # Content-Encoding: gzip
    assert errors == []
    events = await env.events.wait_for(user, 6)
    aliases = await env.events.wait_for(anon, 2)
    by_name = {e["event"]: e for e in events}
    assert sorted(by_name) == ["$identify", "$set", "Order Placed"]
    assert by_name["$identify"]["set"] == {"plan": "pro"}
    assert by_name["$set"]["set"] == {"plan": "enterprise"}
    assert by_name["Order Placed"]["properties"]["$groups"] == {"company": "acme"}
    assert aliases[0]["properties"]["alias"] == user
    for event in events:
        assert (event["project_id"], event["token"], event["protocol"]) == (
            env.project_id,
            env.token,
            "posthog",
        )
        assert event["lib"] == "posthog-python"
        assert event["ip"] == "127.0.0.1"
        assert event["timestamp"].endswith("Z") and event["sent_at"].endswith("Z")
    assert {k for k, _ in env.events.of(user)} == {f"{env.token}:{user}".encode()}


async def test_amplitude_sdk_http_api_and_batch_endpoints(env: Env) -> None:
    user = uid("amp-user")
    results: list[tuple[str, int]] = []

    def use_sdk(path: str) -> None:
        config = amplitude.Config(
            server_url=env.url + path, callback=lambda e, code, _: results.append((path, code))
        )
        client = amplitude.Amplitude(env.token, config)
        client.track(
            amplitude.BaseEvent("Page Viewed", user_id=user, device_id="device-1", insert_id=uid("ins"))
        )
        identify = amplitude.Identify().set("plan", "pro").add("logins", 1)
        client.identify(identify, amplitude.EventOptions(user_id=user, device_id="device-1"))
        client.flush()
        client.shutdown()

    await asyncio.to_thread(use_sdk, "/2/httpapi")
    await asyncio.to_thread(use_sdk, "/batch")
    await until(lambda: len(results) >= 4)
    assert sorted(results) == [("/2/httpapi", 200)] * 2 + [("/batch", 200)] * 2
    events = await env.events.wait_for(user, 4)
    identify_event = next(e for e in events if e["event"] == "$identify")
    assert identify_event["user_properties"] == {"$set": {"plan": "pro"}, "$add": {"logins": 1}}
    page = next(e for e in events if e["event"] == "Page Viewed")
    assert page["protocol"] == "amplitude" and page["lib"].startswith("amplitude-python/")
    assert page["uuid"] == str(
        uuid.uuid5(INSERT_ID_NAMESPACE, f"{env.project_id}:{user}:{page['properties']['$insert_id']}")
    )


async def test_amplitude_sdk_drops_only_the_events_named_in_the_400(env: Env) -> None:
    user = uid("amp-partial")
    results: list[tuple[str, int]] = []
    done = threading.Event()

    def callback(event: amplitude.BaseEvent, code: int, _: str | None) -> None:
        results.append((event.event_type, code))
        if len(results) == 3:
            done.set()

    def use_sdk() -> None:
        client = amplitude.Amplitude(
            env.token,
            amplitude.Config(server_url=env.url + "/2/httpapi", callback=callback, flush_interval_millis=100),
        )
        client.track(amplitude.BaseEvent("good-1", user_id=user))
        client.track(amplitude.BaseEvent("short-id", user_id="abc"))  # under min_id_length 5
        client.track(amplitude.BaseEvent("good-2", user_id=user))
        client.flush()
        done.wait(15)
        client.shutdown()

    await asyncio.to_thread(use_sdk)
    assert sorted(results) == [("good-1", 200), ("good-2", 200), ("short-id", 400)]
    assert sorted(e["event"] for e in await env.events.wait_for(user, 2)) == ["good-1", "good-2"]


# ---- what posthog-js sends ----


async def test_posthog_js_raw_gzip_as_text_plain_with_cors(env: Env) -> None:
    user, event_uuid = uid("js-user"), str(uuid.uuid4())
    body = {
        "api_key": env.token,
        "sent_at": "2026-11-22T05:50:49.800Z",
        "batch": [
            {
                "uuid": event_uuid,
                "event": "$identify",
                "timestamp": "2026-11-22T05:50:49.790Z",
                "$set": {"email": "u1@example.com"},
                "$set_once": {"first_seen_source": "ads"},
                "properties": {
                    "distinct_id": user,
                    "token": env.token,
                    "$lib": "web",
                    "$time": 1795326649.79,
                },
            }
        ],
    }
    headers = {
        "Content-Type": "text/plain",
        "Origin": "https://shop.example",
        "X-Forwarded-For": "203.0.113.7, 10.0.0.1",
    }
    async with env.http.post(
        env.url + "/e/?ip=1&_=1795326649800&ver=1.449.2",
        data=gzip.compress(orjson.dumps(body)),
        headers=headers,
    ) as response:
        assert response.status == 200
        assert await response.json() == {"status": 1}
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
    [event] = await env.events.wait_for(user, 1)
    assert event["uuid"] == event_uuid
    assert (event["set"], event["set_once"]) == ({"email": "u1@example.com"}, {"first_seen_source": "ads"})
    assert event["ip"] == "203.0.113.7"
    assert event["sent_at"] == "2026-11-22T05:50:49.800000Z"


async def test_legacy_posthog_js_forms_lz64_and_base64(env: Env) -> None:
    user = uid("legacy")
    events = [
        {"event": "$pageview", "properties": {"token": env.token, "distinct_id": user, "$time": time.time()}}
    ]
    lz_body = urlencode(
        {"data": LZString().compressToBase64(orjson.dumps(events).decode()), "compression": "lz64"}
    )
    single = {"event": "$autocapture", "properties": {"token": env.token, "distinct_id": user}}
    b64_body = "data=" + base64.b64encode(orjson.dumps(single)).decode()  # '+' not escaped, as beacons do
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for path, data in [("/e/?ip=1&_=1&ver=1.60.0", lz_body), ("/e/?ip=1&_=2&ver=1.60.0", b64_body)]:
        async with env.http.post(env.url + path, data=data, headers=form) as response:
            assert response.status == 200, await response.text()
    query = urlencode({"data": base64.b64encode(orjson.dumps({**single, "event": "via-query"})).decode()})
    async with env.http.get(f"{env.url}/e/?{query}") as response:
        assert response.status == 200
    assert sorted(e["event"] for e in await env.events.wait_for(user, 3)) == [
        "$autocapture",
        "$pageview",
        "via-query",
    ]


async def test_batch_path_routes_on_the_body_shape(env: Env) -> None:
    user = uid("clash")
    posthog_body = {"api_key": env.token, "batch": [{"event": "ph", "distinct_id": user}]}
    amplitude_body = {"api_key": env.token, "events": [{"event_type": "amp", "user_id": user}]}
    assert (await env.post("/batch", posthog_body))[:2] == (200, {"status": 1})
    status, answer, _ = await env.post("/batch/", amplitude_body)
    assert (status, answer["code"], answer["events_ingested"]) == (200, 200, 1)
    assert sorted(e["protocol"] for e in await env.events.wait_for(user, 2)) == ["amplitude", "posthog"]


@pytest.mark.parametrize("path", ["/e", "/capture", "/track", "/engage", "/i/v0/e", "/batch"])
async def test_every_posthog_path_with_and_without_slash(env: Env, path: str) -> None:
    user = uid("path")
    for route in (path, path + "/"):
        body = {"api_key": env.token, "batch": [{"event": route, "distinct_id": user}]}
        assert (await env.post(route + "?ip=1&_=123&ver=1.0&v=2", body))[:2] == (200, {"status": 1})
    assert sorted(e["event"] for e in await env.events.wait_for(user, 2)) == sorted([path, path + "/"])


async def test_amplitude_resend_keeps_the_uuids(env: Env) -> None:
    user = uid("resend")
    body = {
        "api_key": env.token,
        "events": [{"event_type": "e", "user_id": user, "insert_id": f"i{i}"} for i in range(3)],
    }
    first = await env.post("/2/httpapi", body)
    second = await env.post("/2/httpapi", body)
    assert first[0] == second[0] == 200
    assert first[1]["payload_size_bytes"] == len(orjson.dumps(body))
    uuids = [e["uuid"] for e in await env.events.wait_for(user, 6)]
    assert len(set(uuids)) == 3 and sorted(uuids) == sorted(uuids[:3] * 2)


async def test_flags_decide_and_remote_config(env: Env) -> None:
    for method, path in [("POST", "/flags/?v=2"), ("GET", "/flags"), ("POST", "/decide/?v=3")]:
        async with env.http.request(method, env.url + path, data=b"data=e30=") as response:
            answer = await response.json()
            assert response.status == 200
            assert answer["flags"] == answer["featureFlags"] == {}
            assert answer["supportedCompression"] == ["gzip", "gzip-js"]
    async with env.http.get(f"{env.url}/array/{env.token}/config") as response:
        config = await response.json()
        assert config["token"] == env.token and config["supportedCompression"] == ["gzip", "gzip-js"]
    async with env.http.get(f"{env.url}/array/{env.token}/config.js") as response:
        script = await response.text()
        assert response.content_type == "application/javascript"
        assert f'window._POSTHOG_REMOTE_CONFIG["{env.token}"] = {{' in script
        assert '"supportedCompression":["gzip","gzip-js"]' in script


async def test_cors_preflight_and_unknown_paths(env: Env) -> None:
    headers = {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-custom",
    }
    async with env.http.options(env.url + "/i/v0/e/", headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert response.headers["Access-Control-Allow-Headers"] == "content-type, x-custom"
    async with env.http.get(env.url + "/nothing-here") as response:
        assert response.status == 404
        assert (await response.json())["code"] == "not_found"


# ---- errors: the answer, and nothing produced ----


@pytest.mark.parametrize(
    ("data", "headers", "code"),
    [
        (b"{not json", {}, "invalid_json"),
        (b"\x1f\x8b\x08\x00garbage", {"Content-Type": "text/plain"}, "invalid_gzip"),
        (b"data=%%%###", {"Content-Type": "application/x-www-form-urlencoded"}, "invalid_base64"),
        (b"", {}, "empty_body"),
        (b'"just a string"', {}, "invalid_payload"),
        (b'{"batch": []}', {}, "empty_batch"),
    ],
)
async def test_malformed_posthog_bodies_are_400(
    env: Env, data: bytes, headers: dict[str, str], code: str
) -> None:
    async with env.http.post(env.url + "/e/", data=data, headers=headers) as response:
        answer = await response.json()
        assert (response.status, answer["type"], answer["code"]) == (400, "validation_error", code)
        assert answer["detail"]


async def test_posthog_batch_with_bad_events_is_400_listing_them_and_nothing_is_produced(env: Env) -> None:
    user = uid("bad-batch")
    batch = [
        {"event": "fine", "distinct_id": user},
        {"distinct_id": user},
        {"event": "no-id"},
        {"event": "x", "distinct_id": user, "uuid": "nope"},
        {"event": "x", "distinct_id": user, "properties": "nope"},
        {"event": "x", "distinct_id": user, "timestamp": "last tuesday"},
        {"event": "fine", "distinct_id": user},
    ]
    status, answer, _ = await env.post("/batch/", {"api_key": env.token, "batch": batch})
    assert (status, answer["code"]) == (400, "invalid_events")
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [
        (1, "event"),
        (2, "distinct_id"),
        (3, "uuid"),
        (4, "properties"),
        (5, "timestamp"),
    ]
    await env.assert_nothing_produced_for(user)


async def test_missing_and_unknown_tokens_are_401(env: Env) -> None:
    user = uid("token")
    status, answer, _ = await env.post("/e/", {"batch": [{"event": "x", "distinct_id": user}]})
    assert (status, answer["type"], answer["code"]) == (401, "authentication_error", "missing_token")
    status, answer, _ = await env.post(
        "/e/", {"api_key": "phc_nobody", "batch": [{"event": "x", "distinct_id": user}]}
    )
    assert (status, answer["code"]) == (401, "invalid_token")
    status, answer, _ = await env.post(
        f"/e/?token={env.token}", [{"event": "query-token", "distinct_id": user}]
    )
    assert status == 200  # the query token is the last resort, and it works
    assert [e["event"] for e in await env.events.wait_for(user, 1)] == ["query-token"]


async def test_bodies_over_the_limit_are_413(env: Env) -> None:
    big = orjson.dumps(
        {"api_key": env.token, "batch": [{"event": "x", "distinct_id": "d", "pad": "a" * MAX_BODY}]}
    )
    status, answer, _ = await env.post("/batch/", data=big)  # Content-Length says it
    assert (status, answer["code"]) == (413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    status, answer, _ = await env.post("/batch/", data=chunks())
    assert (status, answer["code"]) == (413, "payload_too_large")
    bomb = gzip.compress(b" " * (30 * MAX_BODY))
    status, answer, _ = await env.post("/e/", data=bomb, headers={"Content-Type": "text/plain"})
    assert (status, answer["code"]) == (413, "payload_too_large")
    status, answer, _ = await env.post("/2/httpapi", data=big)
    assert (status, answer) == (413, {"code": 413, "error": "Payload too large"})


async def test_event_over_the_event_limit_is_413_naming_it(env: Env) -> None:
    user = uid("big-event")
    batch = [
        {"event": "small", "distinct_id": user},
        {"event": "huge", "distinct_id": user, "properties": {"pad": "a" * MAX_EVENT}},
    ]
    status, answer, _ = await env.post("/batch/", {"api_key": env.token, "batch": batch})
    assert (status, answer["code"]) == (413, "event_too_large")
    assert [e["index"] for e in answer["errors"]] == [1]
    await env.assert_nothing_produced_for(user)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": [{"event_type": "e", "user_id": "user-1"}]}, "api_key"),
        ({"api_key": "k"}, "events"),
        ({"api_key": "k", "events": []}, "events"),
    ],
)
async def test_amplitude_missing_fields_are_400_naming_the_field(env: Env, body: object, field: str) -> None:
    status, answer, _ = await env.post("/2/httpapi", body)
    assert status == 400
    assert answer == {"code": 400, "error": "Request missing required field", "missing_field": field}


async def test_amplitude_invalid_events_are_400_with_indices_and_nothing_is_produced(env: Env) -> None:
    user = uid("amp-bad")
    events = [
        {"event_type": "fine", "user_id": user},
        {"user_id": user},
        {"event_type": "e", "device_id": "abc"},
        {"event_type": "e", "user_id": user, "time": "now"},
        {"event_type": "e"},
    ]
    status, answer, _ = await env.post("/batch", {"api_key": env.token, "events": events})
    assert status == 400
    assert answer == {
        "code": 400,
        "error": "Invalid field values on some events",
        "events_with_missing_fields": {"event_type": [1], "user_id": [4]},
        "events_with_invalid_id_lengths": {"device_id": [2]},
        "events_with_invalid_fields": {"time": [3]},
    }
    await env.assert_nothing_produced_for(user)


async def test_amplitude_unknown_api_key_is_401(env: Env) -> None:
    status, answer, _ = await env.post(
        "/2/httpapi", {"api_key": "nobody", "events": [{"event_type": "e", "user_id": "user-1"}]}
    )
    assert status == 401 and answer["code"] == 401 and answer["error"]


async def test_amplitude_malformed_json_is_400_with_code(env: Env) -> None:
    status, answer, _ = await env.post("/2/httpapi", data=b"{oops")
    assert status == 400 and answer["code"] == 400 and "JSON" in answer["error"]


async def test_request_metrics_are_counted(env: Env) -> None:
    def count(endpoint: str, status: str) -> float:
        return (
            REGISTRY.get_sample_value("ua_capture_requests_total", {"endpoint": endpoint, "status": status})
            or 0
        )

    before = count("/e", "400"), count("/e", "200")
    await env.post("/e", data=b"{bad")
    await env.post("/e/", {"api_key": env.token, "event": "m", "distinct_id": uid("metrics")})
    assert (count("/e", "400"), count("/e", "200")) == (before[0] + 1, before[1] + 1)


# ---- what no store can hold: replaced, never a 400 for the batch; events past the bounds: 400 naming them ----


def sanitized() -> float:
    return REGISTRY.get_sample_value("ua_sanitized_values_total", {"stage": "capture"}) or 0


async def test_posthog_lone_surrogate_escape_is_200_and_produced_as_u_fffd(env: Env) -> None:
    user = uid("surrogate")
    before = sanitized()
    # JSON.stringify of a string cut inside an emoji; orjson alone refuses the whole body
    body = (
        b'{"api_key": "%s", "batch": [{"event": "cut", "distinct_id": "%s", '
        b'"properties": {"title": "emoji \\ud83d", "\\udc00key": "\\ud83d\\ude00"}}]}'
        % (env.token.encode(), user.encode())
    )
    status, answer, _ = await env.post("/batch/", data=body)
    assert (status, answer) == (200, {"status": 1})
    [event] = await env.events.wait_for(user, 1)
    assert event["properties"] == {"title": "emoji \ufffd", "\ufffdkey": "😀"}
    assert sanitized() == before + 2


async def test_nul_in_every_posthog_field_is_200_and_produced_as_u_fffd(env: Env) -> None:
    user = uid("nul")
    before = sanitized()
    raw = {
        "event": "signed\x00up",
        "distinct_id": user + "\x00",
        "$set": {"plan\x00": "pro\x00"},
        "properties": {"$anon_distinct_id": "anon\x00", "$set_once": {"source\x00": "ads\x00"}},
    }
    status, _, _ = await env.post("/batch/", {"api_key": env.token, "batch": [raw]})
    assert status == 200
    [event] = await env.events.wait_for(user + "\ufffd", 1)
    assert event["event"] == "signed\ufffdup"
    assert event["set"] == {"plan\ufffd": "pro\ufffd"}
    assert event["set_once"] == {"source\ufffd": "ads\ufffd"}
    assert event["properties"]["$anon_distinct_id"] == "anon\ufffd"
    assert env.events.of(user + "\ufffd")[0][0] == f"{env.token}:{user}\ufffd".encode()
    assert sanitized() == before + 7


async def test_nul_in_every_amplitude_field_is_200_and_produced_as_u_fffd(env: Env) -> None:
    user = uid("amp-nul")
    raw = {
        "event_type": "Bought\x00",
        "user_id": user + "\x00",
        "event_properties": {"sku\x00": "\x00"},
        "user_properties": {
            "$set": {"plan\x00": "pro\x00"},
            "$setOnce": {"source\x00": "ads\x00"},
            "$add": {"logins\x00": 1},
            "$append": {"tags\x00": "new\x00"},
        },
    }
    status, answer, _ = await env.post("/2/httpapi", {"api_key": env.token, "events": [raw]})
    assert (status, answer["code"], answer["events_ingested"]) == (200, 200, 1)
    [event] = await env.events.wait_for(user + "\ufffd", 1)
    assert event["event"] == "Bought\ufffd"
    assert event["properties"]["sku\ufffd"] == "\ufffd"
    assert event["user_properties"] == {
        "$set": {"plan\ufffd": "pro\ufffd"},
        "$setOnce": {"source\ufffd": "ads\ufffd"},
        "$add": {"logins\ufffd": 1},
        "$append": {"tags\ufffd": "new\ufffd"},
    }


def nested(levels: int) -> object:
    value: object = "bottom"
    for _ in range(levels):
        value = [value]
    return value


async def test_events_nested_past_the_limit_are_400_naming_them_and_nothing_is_produced(env: Env) -> None:
    user = uid("deep")
    too_deep = nested(300)  # past orjson's own limit too: this was a 500
    batch = [
        {"event": "fine", "distinct_id": user},
        {"event": "deep", "distinct_id": user, "properties": {"a": too_deep}},
    ]
    body = json.dumps({"api_key": env.token, "batch": batch}).encode()  # orjson refuses to write it
    status, answer, _ = await env.post("/batch/", data=body)
    assert (status, answer["code"]) == (400, "invalid_events")
    [error] = answer["errors"]
    assert (error["index"], error["field"]) == (1, "properties.a" + "[0]" * 62)
    assert error["reason"] == "too_deep: more than 64 nested objects and arrays"

    events = [
        {"event_type": "fine", "user_id": user},
        {"event_type": "deep", "user_id": user, "event_properties": {"a": nested(70)}},
    ]
    status, answer, _ = await env.post("/2/httpapi", {"api_key": env.token, "events": events})
    assert (status, answer) == (
        400,
        {
            "code": 400,
            "error": "Invalid field values on some events",
            "events_with_invalid_fields": {"event_properties.a" + "[0]" * 62: [1]},
        },
    )

    good, deep = str(uuid.uuid4()), str(uuid.uuid4())
    v1 = {"batch": [
        {"event": "v1-fine", "uuid": good, "distinct_id": user + "-v1"},
        {"event": "deep", "uuid": deep, "distinct_id": user + "-v1", "properties": {"a": too_deep}},
        {"event": "cut-uuid", "uuid": "\ud83d", "distinct_id": user + "-v1"},
    ]}  # fmt: skip
    status, answer, _ = await env.post(
        "/i/v1/analytics/events", data=json.dumps(v1), headers={"Authorization": f"Bearer {env.token}"}
    )
    assert (status, answer["results"][good]) == (200, {"result": "ok"})
    assert answer["results"][deep] == {
        "result": "drop",
        "reason": "properties.a" + "[0]" * 62 + ": too_deep: more than 64 nested objects and arrays",
    }
    assert answer["results"]["\ufffd"] == {"result": "drop", "reason": "uuid: '\ufffd' is not a valid UUID"}
    assert [e["event"] for e in await env.events.wait_for(user + "-v1", 1)] == ["v1-fine"]
    await env.assert_nothing_produced_for(user)


async def test_tokens_no_store_can_hold_are_401_not_503(env: Env) -> None:
    event = {"event": "e", "distinct_id": uid("token-nul")}
    status, answer, _ = await env.post("/batch/", {"api_key": env.token + "\x00", "batch": [event]})
    assert (status, answer["code"]) == (401, "invalid_token")
    status, answer, _ = await env.post("/batch/?token=%00", [event])
    assert (status, answer["code"]) == (401, "invalid_token")
    status, answer, _ = await env.post(
        "/2/httpapi", {"api_key": "\x00", "events": [{"event_type": "e", "user_id": "user-1"}]}
    )
    assert (status, answer["code"]) == (401, 401)


async def test_an_x_forwarded_for_that_is_not_ascii_gives_the_peer_address(env: Env) -> None:
    user = uid("xff")
    body = orjson.dumps({"api_key": env.token, "batch": [{"event": "e", "distinct_id": user}]})
    reader, writer = await asyncio.open_connection("127.0.0.1", int(env.url.rsplit(":", 1)[1]))
    head = b"POST /batch/ HTTP/1.1\r\nHost: capture\r\nX-Forwarded-For: \xff\xfe, 10.0.0.1\r\n"
    writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")  # it was a 500: orjson refused to write the ip
    [event] = await env.events.wait_for(user, 1)
    assert event["ip"] == "127.0.0.1"


# ---- infrastructure down: 503 with Retry-After, never a 200 ----


async def test_postgres_down_is_503(settings: Settings) -> None:
    dead = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/x", min_size=0, timeout=2
    )
    producer = RecordingProducer()
    port = free_port()
    runner = await serve(create_app(settings, producer, ProjectCache(dead, 30)), "127.0.0.1", port, 5)
    try:
        async with aiohttp.ClientSession() as http:
            posthog_body = orjson.dumps({"api_key": "phc_x", "batch": [{"event": "e", "distinct_id": "d"}]})
            async with http.post(f"http://127.0.0.1:{port}/batch/", data=posthog_body) as response:
                answer = await response.json()
                assert (response.status, answer["code"]) == (503, "postgres_unavailable")
                assert response.headers["Retry-After"]
            amplitude_body = orjson.dumps(
                {"api_key": "k", "events": [{"event_type": "e", "user_id": "user-1"}]}
            )
            async with http.post(f"http://127.0.0.1:{port}/2/httpapi", data=amplitude_body) as response:
                assert (response.status, (await response.json())["code"]) == (503, 503)
    finally:
        await runner.cleanup()
        await dead.close()
    assert producer.sent == []


async def test_broker_down_is_503_and_nothing_is_acknowledged(settings: Settings, env: Env) -> None:
    broker = Tansu().start()
    try:
        local = dataclasses.replace(
            settings, kafka_bootstrap_servers=broker.bootstrap, kafka_produce_timeout_seconds=2
        )
        await ensure_topics(local, [EVENTS_RAW])
        producer = await start_producer(local)
        port = free_port()
        runner = await serve(create_app(local, producer, ProjectCache(env.pool, 30)), "127.0.0.1", port, 5)
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            ok = {"api_key": env.token, "batch": [{"event": "before", "distinct_id": "d"}]}
            async with http.post(url + "/batch/", data=orjson.dumps(ok)) as response:
                assert response.status == 200
            broker.stop()
            started = time.monotonic()
            async with http.post(url + "/batch/", data=orjson.dumps(ok)) as response:
                answer = await response.json()
                assert (response.status, answer["code"]) == (503, "kafka_unavailable")
                assert response.headers["Retry-After"]
            amp = {"api_key": env.token, "events": [{"event_type": "e", "user_id": "user-1"}]}
            async with http.post(url + "/2/httpapi", data=orjson.dumps(amp)) as response:
                assert (response.status, (await response.json())["code"]) == (503, 503)
            assert time.monotonic() - started < 15
        await runner.cleanup()
        await asyncio.wait_for(producer.stop(), 15)
    finally:
        broker.stop()


# ---- lifecycle ----


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[Record] = []

    async def send_all(self, topic: str, records: Sequence[Record]) -> None:
        self.sent.extend(records)


class GatedProducer:
    """The real producer, held at a gate so a request can be caught in flight."""

    def __init__(self, inner: Producer) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def send_all(self, topic: str, records: Sequence[Record]) -> None:
        self.entered.set()
        await self.gate.wait()
        await self.inner.send_all(topic, records)


async def test_shutdown_stops_accepting_and_finishes_requests_in_flight(settings: Settings, env: Env) -> None:
    user = uid("in-flight")
    producer = await start_producer(settings)
    gated = GatedProducer(producer)
    port = free_port()
    runner = await serve(create_app(settings, gated, ProjectCache(env.pool, 30)), "127.0.0.1", port, 10)
    url = f"http://127.0.0.1:{port}/batch/"
    body = orjson.dumps({"api_key": env.token, "batch": [{"event": "in-flight", "distinct_id": user}]})
    async with aiohttp.ClientSession() as http:

        async def post() -> int:
            async with http.post(url, data=body) as response:
                return response.status

        request = asyncio.create_task(post())
        await asyncio.wait_for(gated.entered.wait(), 5)
        cleanup = asyncio.create_task(runner.cleanup())
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as other:
            with pytest.raises(aiohttp.ClientConnectionError):
                await other.post(url, data=body)
        gated.gate.set()
        assert await request == 200
        await asyncio.wait_for(cleanup, 10)
    await producer.stop()
    assert [e["event"] for e in await env.events.wait_for(user, 1)] == ["in-flight"]


async def test_main_serves_until_stopping_is_set(settings: Settings, env: Env) -> None:
    user = uid("main")
    port = free_port()
    stopping = asyncio.Event()
    limits_off = dataclasses.replace(settings, capture_port=port, capture_rate_limits=False)  # no Redis here
    task = asyncio.create_task(main(limits_off, stopping))
    await asyncio.to_thread(wait_for_port, port, 20)
    body = {"api_key": env.token, "batch": [{"event": "via-main", "distinct_id": user}]}
    async with env.http.post(f"http://127.0.0.1:{port}/batch/", data=orjson.dumps(body)) as response:
        assert response.status == 200
    stopping.set()
    await asyncio.wait_for(task, 15)
    assert [e["event"] for e in await env.events.wait_for(user, 1)] == ["via-main"]


async def test_amplitude_identify_api_takes_form_updates_as_identify_events(env: Env) -> None:
    user = uid("amp-ident")
    identification = [
        {"user_id": user, "device_id": "device-77", "user_properties": {"$set": {"plan": "pro"}, "age": 30}},
        {"user_id": user, "user_properties": {"$add": {"logins": 1}}},
    ]
    form = {"api_key": env.token, "identification": orjson.dumps(identification).decode()}
    status, body, _ = await env.post("/identify", data=form)
    assert status == 200 and body["code"] == 200 and body["events_ingested"] == 2
    events = await env.events.wait_for(user, 2)
    assert [e["event"] for e in events] == ["$identify", "$identify"]
    assert events[0]["user_properties"] == {"$set": {"plan": "pro"}, "age": 30}
    assert events[0]["properties"]["$device_id"] == "device-77"

    status, body, _ = await env.post("/identify", data={"api_key": env.token})
    assert status == 400 and body["code"] == 400 and body["missing_field"] == "identification"
    status, body, _ = await env.post("/identify", data={"api_key": env.token, "identification": "{nope"})
    assert status == 400 and body["code"] == 400
    status, body, _ = await env.post("/identify", data={"api_key": "unknown", "identification": "{}"})
    assert status == 401 and body["code"] == 401


async def test_posthog_python_sdk_capture_v1_gets_a_result_per_event(env: Env) -> None:
    user = uid("v1-user")

    def use_sdk() -> None:
        client = posthog.Posthog(env.token, host=env.url, capture_mode="v1", max_retries=0)
        client.capture("v1_event", distinct_id=user, properties={"n": 1, "$set": {"plan": "pro"}})
        client.capture("v1_event", distinct_id=user, properties={"n": 2})
        client.flush()
        client.shutdown()

    await asyncio.to_thread(use_sdk)
    events = await env.events.wait_for(user, 2)
    assert sorted(e["properties"]["n"] for e in events) == [1, 2]
    assert all(e["event"] == "v1_event" and e["protocol"] == "posthog" for e in events)

    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"created_at": "2026-11-22T10:00:00Z", "batch": [
        {"event": "v1_raw", "uuid": good, "distinct_id": user, "timestamp": "2026-11-22T09:59:59Z", "properties": {}},
        {"event": "v1_raw", "uuid": bad, "timestamp": "2026-11-22T09:59:59Z", "properties": {}},
    ]}  # fmt: skip
    status, answer, _ = await env.post(
        "/i/v1/analytics/events", body, headers={"Authorization": f"Bearer {env.token}"}
    )
    assert status == 200
    assert answer["results"][good] == {"result": "ok"}
    assert answer["results"][bad]["result"] == "drop" and "distinct_id" in answer["results"][bad]["reason"]
    status, _, _ = await env.post("/i/v1/analytics/events", body)
    assert status == 401
    status, _, _ = await env.post("/i/v1/analytics/events", body, headers={"Authorization": "Bearer nope"})
    assert status == 401

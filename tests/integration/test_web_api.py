"""The web app's endpoints (issue 11) over a real chDB and Postgres: definitions with types, the persons
list, the live event stream, and the web app's files."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from tests.components import free_port, wait_for_port
from workers.clickhouse import ClickHouse, connect
from workers.migrate import migrate_clickhouse
from workers.projects import Project, ensure_project
from workers.query import api as query
from workers.query.api import create_app
from workers.settings import Settings
from workers.writer import EVENT_COLUMNS, PERSON_COLUMNS

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
INDEX = b"<!doctype html><title>app</title>"
ASSET = b"console.log('app')"


@pytest.fixture(scope="module")
async def ch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClickHouse]:
    ch = await connect(f"chdb://{tmp_path_factory.mktemp('web') / 'chdb'}")
    await migrate_clickhouse(ch)
    yield ch
    await ch.close()


@pytest.fixture(scope="module")
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    top = tmp_path_factory.mktemp("site")
    (top / "secret.txt").write_text("outside the app")
    (top / "dist" / "assets").mkdir(parents=True)
    (top / "dist" / "index.html").write_bytes(INDEX)
    (top / "dist" / "assets" / "index-abc.js").write_bytes(ASSET)
    (top / "dist" / "favicon.svg").write_text("<svg/>")
    return top / "dist"


async def _client(settings: Settings, ch: ClickHouse, pool: asyncpg.Pool) -> TestClient:
    client = TestClient(TestServer(create_app(settings, ch, pool)))
    await client.start_server()
    return client


@pytest.fixture(scope="module")
async def client(
    ch: ClickHouse, pool: asyncpg.Pool, dist: Path, make_settings: Callable[..., Settings]
) -> AsyncIterator[TestClient]:
    client = await _client(make_settings(web_dist_dir=dist, live_poll_seconds=0.05), ch, pool)
    yield client
    await client.close()


@pytest.fixture
async def project(pool: asyncpg.Pool) -> Project:
    return await ensure_project(pool, f"web-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def other(pool: asyncpg.Pool) -> Project:
    return await ensure_project(pool, f"web-other-{uuid.uuid4().hex[:8]}")


def auth(project: Project) -> dict[str, str]:
    return {"Authorization": f"Bearer {project.api_key}"}


def event_row(
    project: Project, event: str, properties: dict[str, Any], event_uuid: str | None = None
) -> tuple[Any, ...]:
    """A row in writer.EVENT_COLUMNS order, as the writer inserts it."""
    now = datetime.now(UTC)
    return (event_uuid or str(uuid.uuid4()), project.id, event, "user-1", str(uuid.uuid4()), "{}", now,
            orjson.dumps(properties).decode(), "", "", "127.0.0.1", "web", "posthog", None, now)  # fmt: skip


async def insert_events(ch: ClickHouse, rows: list[tuple[Any, ...]]) -> None:
    await ch.insert("events", EVENT_COLUMNS, rows)


# definitions


async def test_definitions_list_the_projects_names_with_their_most_common_type(
    client: TestClient, ch: ClickHouse, project: Project, other: Project
) -> None:
    await insert_events(ch, [
        event_row(project, "$pageview", {"$browser": "Chrome", "n": 1, "price": 1.5, "ok": True, "tags": ["a"],
                                         "obj": {"x": 1}, "nothing": None}),
        event_row(project, "$pageview", {"$browser": "Safari", "n": 2}),
        event_row(project, "signed_up", {"n": "three"}),
        event_row(other, "other_event", {"secret": 1}),
    ])  # fmt: skip
    now = datetime.now(UTC)
    await ch.insert("persons", PERSON_COLUMNS, [
        (str(uuid.uuid4()), project.id, '{"plan": "pro", "age": 30}', 1, now, 1, 0),
        (str(uuid.uuid4()), project.id, '{"plan": "free"}', 0, now, 1, 0),
        (str(uuid.uuid4()), other.id, '{"b_only": true}', 0, now, 1, 0),
    ])  # fmt: skip
    response = await client.get("/api/definitions", headers=auth(project))
    assert response.status == 200
    assert await response.json() == {
        "events": ["$pageview", "signed_up"],
        "event_properties": [
            {"name": "$browser", "type": "String"},
            {"name": "n", "type": "Numeric"},
            {"name": "nothing", "type": None},
            {"name": "obj", "type": "Object"},
            {"name": "ok", "type": "Boolean"},
            {"name": "price", "type": "Numeric"},
            {"name": "tags", "type": "Array"},
        ],
        "person_properties": [{"name": "age", "type": "Numeric"}, {"name": "plan", "type": "String"}],
    }


async def test_definitions_need_a_project_key(client: TestClient) -> None:
    response = await client.get("/api/definitions", headers={"Authorization": "Bearer nope"})
    assert response.status == 401 and (await response.json())["code"] == "invalid_api_key"


# persons list


async def add_person(
    pool: asyncpg.Pool,
    project: Project,
    distinct_ids: list[str],
    properties: dict[str, Any],
    created: datetime,
) -> str:
    person_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO persons (id, project_id, properties, created_at) VALUES ($1, $2, $3::jsonb, $4)",
        person_id, project.id, orjson.dumps(properties).decode(), created,
    )  # fmt: skip
    for distinct_id in distinct_ids:
        await pool.execute(
            "INSERT INTO person_distinct_ids (project_id, distinct_id, person_id) VALUES ($1, $2, $3)",
            project.id, distinct_id, person_id,
        )  # fmt: skip
    return str(person_id)


async def persons(client: TestClient, project: Project, **query: str) -> tuple[int, Any]:
    response = await client.get("/api/persons", params=query, headers=auth(project))
    return response.status, await response.json()


async def test_persons_list_searches_pages_and_keeps_to_the_project(
    client: TestClient, pool: asyncpg.Pool, project: Project, other: Project
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    alice = await add_person(pool, project, ["alice-1", "anon-9"], {"plan": "free"}, base)
    bob = await add_person(pool, project, ["bob"], {"plan": "Enterprise", "email": "bob@example.com"},
                           base + timedelta(days=1))  # fmt: skip
    twins = sorted([await add_person(pool, project, [f"twin-{n}"], {}, base + timedelta(days=2)) for n in (1, 2)],
                   reverse=True)  # fmt: skip
    carol = await add_person(pool, project, ["carol"], {"ALICE_friend": True}, base + timedelta(days=3))
    await add_person(pool, other, ["alice-other"], {"plan": "enterprise"}, base)

    status, body = await persons(client, project)
    assert status == 200 and body["next_cursor"] is None
    assert [p["id"] for p in body["persons"]] == [carol, *twins, bob, alice]
    assert body["persons"][-1] == {"id": alice, "distinct_ids": ["alice-1", "anon-9"], "properties": {"plan": "free"},
                                   "is_identified": False, "created_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip

    _, body = await persons(client, project, search="ALI")  # a distinct id, and a key's text
    assert [p["id"] for p in body["persons"]] == [carol, alice]
    _, body = await persons(client, project, search="enterPRISE")  # a property value
    assert [p["id"] for p in body["persons"]] == [bob]
    _, body = await persons(client, project, search="9")
    assert [p["id"] for p in body["persons"]] == [alice]

    seen, cursor = [], None
    while True:
        status, body = await persons(client, project, limit="2", **({"cursor": cursor} if cursor else {}))
        assert status == 200 and len(body["persons"]) <= 2
        seen += [p["id"] for p in body["persons"]]
        if (cursor := body["next_cursor"]) is None:
            break
    assert seen == [carol, *twins, bob, alice]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"search": "a\x00b"}, "search"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
     ({"limit": "x"}, "limit"), ({"cursor": "nonsense"}, "cursor")],
)  # fmt: skip
async def test_bad_persons_queries_are_400_naming_the_field(
    client: TestClient, project: Project, query: dict[str, str], field: str
) -> None:
    status, body = await persons(client, project, **query)
    assert status == 400 and body["code"] == "invalid_request" and body["detail"].startswith(f"{field}:")


# live


async def read_messages(
    response: aiohttp.ClientResponse, count: int, quiet: float = 0.3
) -> list[dict[str, str]]:
    """`count` SSE messages (comments left out), then nothing more for `quiet` seconds."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}

    async def read() -> None:
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line == "":
                if current:
                    messages.append(dict(current))
                    current.clear()
                    if len(messages) >= count:
                        return
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                current[name] = value

    await asyncio.wait_for(read(), 10)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(read(), quiet)
    return messages


async def test_live_sends_the_projects_new_events_once_each(
    client: TestClient, ch: ClickHouse, project: Project, other: Project
) -> None:
    await insert_events(ch, [event_row(project, "before", {})])  # stored before connecting: not sent
    everything = await client.get("/api/live", headers=auth(project))
    clicks = await client.get("/api/live", params={"event": "click"}, headers=auth(project))
    assert everything.status == 200 and everything.headers["Content-Type"] == "text/event-stream"
    view, click = event_row(project, "$pageview", {"path": "/"}), event_row(project, "click", {"n": 1})
    await insert_events(ch, [view, click, event_row(other, "click", {})])
    await insert_events(ch, [click])  # a redelivered copy

    messages = await read_messages(everything, 2)
    assert [m["event"] for m in messages] == ["event", "event"]
    data = sorted((orjson.loads(m["data"]) for m in messages), key=lambda d: d["event"])
    assert [(d["uuid"], d["event"], d["distinct_id"], d["person_id"], d["properties"]) for d in data] == [
        (view[0], "$pageview", "user-1", view[4], {"path": "/"}),
        (click[0], "click", "user-1", click[4], {"n": 1}),
    ]
    assert all(
        m["id"].endswith("|" + d["uuid"])
        for m, d in zip(messages, map(orjson.loads, (m["data"] for m in messages)), strict=True)
    )
    assert [orjson.loads(m["data"])["uuid"] for m in await read_messages(clicks, 1)] == [click[0]]
    everything.close()
    clicks.close()


async def test_live_since_replays_from_that_instant(
    client: TestClient, ch: ClickHouse, project: Project
) -> None:
    since = datetime.now(UTC)
    row = event_row(project, "earlier", {})
    await insert_events(ch, [row])
    response = await client.get("/api/live", params={"since": since.isoformat()}, headers=auth(project))
    assert [orjson.loads(m["data"])["uuid"] for m in await read_messages(response, 1)] == [row[0]]
    response.close()


async def test_live_sends_every_event_of_an_insert_bigger_than_a_poll(
    client: TestClient, ch: ClickHouse, project: Project
) -> None:
    """One insert's rows share their inserted_at; a poll cut inside them resumes after the last uuid sent,
    so the statement must order them as the cursor compares them."""
    since = datetime.now(UTC)
    rows = [event_row(project, "bulk", {}) for _ in range(3 * 200 + 17)]
    await insert_events(ch, rows)
    response = await client.get("/api/live", params={"since": since.isoformat()}, headers=auth(project))
    sent = [orjson.loads(m["data"])["uuid"] for m in await read_messages(response, len(rows))]
    assert sorted(sent) == sorted(r[0] for r in rows)
    response.close()


async def test_live_keeps_no_concurrency_slot_and_refuses_a_key_in_the_url(
    client: TestClient, project: Project
) -> None:
    streams = [
        await client.get("/api/live", headers=auth(project)) for _ in range(6)
    ]  # over QUERY_KEY_CONCURRENCY
    assert [s.status for s in streams] == [200] * 6
    response = await client.get("/api/definitions", headers=auth(project))
    assert response.status == 200
    from workers.metrics import QUERY_LIVE_STREAMS

    assert QUERY_LIVE_STREAMS._value.get() >= 6  # type: ignore[attr-defined]
    for stream in streams:
        stream.close()
    response = await client.get("/api/live", params={"api_key": project.api_key})
    assert response.status == 401


async def test_live_bad_since_is_400(client: TestClient, project: Project) -> None:
    response = await client.get("/api/live", params={"since": "yesterday"}, headers=auth(project))
    assert response.status == 400 and (await response.json())["detail"].startswith("since:")


async def test_the_api_stops_at_once_with_a_live_stream_open(
    ch: ClickHouse, pool: asyncpg.Pool, pg_dsn: str, project: Project, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()
    settings = make_settings(postgres_dsn=pg_dsn, query_port=port, live_poll_seconds=0.05)
    stopping = asyncio.Event()
    server = asyncio.create_task(query.main(settings, stopping, ch))
    await asyncio.to_thread(wait_for_port, port)
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"http://127.0.0.1:{port}/api/live", headers=auth(project))
        assert response.status == 200
        started = time.monotonic()
        stopping.set()  # what SIGTERM does (workers.runtime)
        await asyncio.wait_for(server, 3)
        assert time.monotonic() - started < 3
        assert await asyncio.wait_for(response.content.read(), 3) == b""  # the stream ended cleanly


# the web app's files


async def test_client_routes_get_the_index_and_assets_are_cached_for_good(client: TestClient) -> None:
    for path in ("/", "/insights/trends", "/persons/x", "/dashboards/3", "/login", "/live"):
        response = await client.get(path)
        assert response.status == 200, path
        assert await response.read() == INDEX and response.headers["Cache-Control"] == "no-cache"
    response = await client.get("/assets/index-abc.js")
    assert response.status == 200 and await response.read() == ASSET
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    response = await client.get("/favicon.svg")
    assert response.status == 200 and await response.text() == "<svg/>"
    assert (await client.get("/assets/missing.js")).status == 404


@pytest.mark.parametrize(
    "path",
    ["/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt",
     "/..%2fsecret.txt", "/assets/..%2F..%2Fsecret.txt", "/%2e%2e%2f%2e%2e%2fetc/passwd"],
)  # fmt: skip
async def test_paths_out_of_the_directory_are_refused(client: TestClient, path: str) -> None:
    response = await client.get(URL(path, encoded=True))
    body = await response.read()
    assert b"outside the app" not in body and b"root:" not in body
    if "%" in path:  # the dots reach the server, which refuses to leave the directory
        assert response.status == 404, (path, response.status)
    else:  # dot segments are removed from the URL before any handler sees it: /secret.txt is a client route
        assert (response.status, body) == (200, INDEX)


async def test_unknown_api_paths_stay_json_404s(client: TestClient) -> None:
    for method in ("GET", "POST"):
        response = await client.request(method, "/api/unknown")
        assert response.status == 404 and (await response.json())["code"] == "not_found"


async def test_without_a_built_app_the_page_says_how_to_build_it(
    ch: ClickHouse, pool: asyncpg.Pool, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    client = await _client(make_settings(web_dist_dir=tmp_path / "missing"), ch, pool)
    try:
        for path in ("/", "/insights/trends"):
            response = await client.get(path)
            assert response.status == 503 and response.content_type == "text/html"
            assert "make up" in await response.text()
    finally:
        await client.close()

"""Saved insights and dashboards (issue 11) on a real Postgres: CRUD, the 400s naming fields, 404s across
projects, tiles in order and gone with their insight. No ClickHouse: these endpoints never run a statement
there (the fake says so if they try)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.projects import Project, ensure_project
from workers.query.api import create_app
from workers.settings import Settings

pytestmark = pytest.mark.postgres
TRENDS = {"events": [{"event": "$pageview"}], "measure": "totals", "interval": "day",
          "date_from": "2026-11-01", "date_to": "2026-11-07"}  # fmt: skip
FUNNEL = {
    "steps": [{"event": "a"}, {"event": "b"}],
    "window_seconds": 86400,
    "date_from": "2026-11-01",
    "date_to": "2026-11-07",
}


class NoClickHouse:
    async def query(self, sql: str, params: Any = None, settings: Any = None) -> list[dict[str, Any]]:
        raise AssertionError("insights and dashboards never ask ClickHouse")


@pytest.fixture(scope="module")
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def client(pool: asyncpg.Pool, make_settings: Callable[..., Settings]) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(make_settings(), NoClickHouse(), pool))) as test_client:  # type: ignore[arg-type]
        yield test_client


@pytest.fixture
async def project(pool: asyncpg.Pool) -> Project:
    return await ensure_project(pool, f"saved-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def other(pool: asyncpg.Pool) -> Project:
    return await ensure_project(pool, f"saved-other-{uuid.uuid4().hex[:8]}")


async def call(
    client: TestClient, project: Project, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {project.api_key}"}
    response = await client.request(method, path, json=body, headers=headers)
    return response.status, (None if response.status == 204 else await response.json())


async def test_insights_are_created_read_listed_changed_and_deleted(
    client: TestClient, project: Project
) -> None:
    status, trends = await call(
        client, project, "POST", "/api/insights", {"name": " Views ", "kind": "trends", "query": TRENDS}
    )
    assert status == 201
    assert trends["name"] == "Views" and trends["kind"] == "trends" and trends["query"] == TRENDS
    assert isinstance(trends["id"], int) and trends["created_at"] == trends["updated_at"]
    _, funnel = await call(
        client, project, "POST", "/api/insights", {"name": "Signup", "kind": "funnels", "query": FUNNEL}
    )
    assert await call(client, project, "GET", f"/api/insights/{trends['id']}") == (200, trends)

    changed = {**TRENDS, "interval": "week"}
    status, patched = await call(
        client, project, "PATCH", f"/api/insights/{trends['id']}", {"name": "Weekly", "query": changed}
    )
    assert status == 200 and (patched["name"], patched["query"], patched["kind"]) == (
        "Weekly",
        changed,
        "trends",
    )
    assert patched["updated_at"] > trends["updated_at"] and patched["created_at"] == trends["created_at"]
    status, body = await call(client, project, "GET", "/api/insights")
    assert status == 200 and body == {"insights": [patched, funnel]}  # newest updated first

    assert await call(client, project, "DELETE", f"/api/insights/{trends['id']}") == (204, None)
    status, body = await call(client, project, "GET", f"/api/insights/{trends['id']}")
    assert status == 404 and body["code"] == "insight_not_found"
    assert (await call(client, project, "GET", "/api/insights"))[1] == {"insights": [funnel]}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"name": "x", "kind": "pie", "query": TRENDS}, "invalid_request", "kind:"),
        ({"name": "x", "kind": "trends", "query": {**TRENDS, "measure": "most"}}, "invalid_request", "query.measure:"),
        ({"name": "x", "kind": "trends", "query": {**TRENDS, "events": []}}, "invalid_request", "query.events:"),
        ({"name": "x", "kind": "funnels", "query": TRENDS}, "invalid_request", "query."),
        ({"name": "x", "kind": "trends"}, "invalid_request", "query:"),
        ({"name": "x", "kind": "trends", "query": {**TRENDS, "events": [{"event": "a\x00"}]}}, "invalid_request", "query"),
        ({"name": "", "kind": "trends", "query": TRENDS}, "invalid_name", "name:"),
        ({"name": "x" * 201, "kind": "trends", "query": TRENDS}, "invalid_name", "name:"),
        ({"name": "a\x00b", "kind": "trends", "query": TRENDS}, "invalid_name", "name:"),
        ({"kind": "trends", "query": TRENDS}, "invalid_name", "name:"),
        ([1, 2], "invalid_request", "body:"),
    ],
)  # fmt: skip
async def test_bad_insights_are_400_naming_the_field(
    client: TestClient, project: Project, body: Any, code: str, field: str
) -> None:
    status, answer = await call(client, project, "POST", "/api/insights", body)
    assert status == 400 and answer["code"] == code and answer["detail"].startswith(field), answer


@pytest.mark.parametrize(
    ("kind", "query"),
    [("stickiness", {"events": [{"event": "$pageview"}], "interval": "week", "date_from": "2026-11-01",
      "date_to": "2026-11-30"}),
     ("lifecycle", {"event": "$pageview", "interval": "day", "date_from": "2026-11-01", "date_to": "2026-11-07"})],
)  # fmt: skip
async def test_stickiness_and_lifecycle_insights_are_saved(
    client: TestClient, project: Project, kind: str, query: dict[str, Any]
) -> None:
    status, saved = await call(
        client, project, "POST", "/api/insights", {"name": kind, "kind": kind, "query": query}
    )
    assert status == 201 and (saved["kind"], saved["query"]) == (kind, query), saved
    assert await call(client, project, "GET", f"/api/insights/{saved['id']}") == (200, saved)


async def test_a_patch_is_checked_against_the_insights_kind(client: TestClient, project: Project) -> None:
    _, insight = await call(
        client, project, "POST", "/api/insights", {"name": "v", "kind": "trends", "query": TRENDS}
    )
    status, body = await call(client, project, "PATCH", f"/api/insights/{insight['id']}", {"query": FUNNEL})
    assert status == 400 and body["detail"].startswith("query.")
    status, body = await call(client, project, "PATCH", f"/api/insights/{insight['id']}", {"name": " "})
    assert status == 400 and body["code"] == "invalid_name"
    assert (await call(client, project, "GET", f"/api/insights/{insight['id']}"))[1] == insight


async def test_another_projects_or_a_strange_id_is_404(
    client: TestClient, project: Project, other: Project
) -> None:
    _, insight = await call(
        client, other, "POST", "/api/insights", {"name": "theirs", "kind": "trends", "query": TRENDS}
    )
    _, dashboard = await call(client, other, "POST", "/api/dashboards", {"name": "theirs"})
    for method, body in (("GET", None), ("PATCH", {"name": "mine"}), ("DELETE", None)):
        for ident in (insight["id"], "abc", "99999999999999999999", "-1"):
            status, answer = await call(client, project, method, f"/api/insights/{ident}", body)
            assert (status, answer["code"]) == (404, "insight_not_found"), (method, ident)
        for ident in (dashboard["id"], "abc"):
            status, answer = await call(client, project, method, f"/api/dashboards/{ident}", body)
            assert (status, answer["code"]) == (404, "dashboard_not_found"), (method, ident)
    assert (await call(client, project, "GET", "/api/insights"))[1] == {"insights": []}
    assert (await call(client, project, "GET", "/api/dashboards"))[1] == {"dashboards": []}
    assert (await call(client, other, "GET", f"/api/insights/{insight['id']}"))[1] == insight


async def test_dashboards_keep_their_tiles_in_order_and_lose_a_deleted_insights(
    client: TestClient, project: Project
) -> None:
    insights = [
        (
            await call(
                client, project, "POST", "/api/insights", {"name": f"i{n}", "kind": "trends", "query": TRENDS}
            )
        )[1]
        for n in range(3)
    ]
    a, b, c = (i["id"] for i in insights)
    status, dashboard = await call(
        client,
        project,
        "POST",
        "/api/dashboards",
        {"name": "Main", "tiles": [{"insight_id": c}, {"insight_id": a}]},
    )
    assert status == 201
    assert dashboard["name"] == "Main" and dashboard["refresh_seconds"] == 300
    assert dashboard["tiles"] == [
        {"insight_id": c, "insight": insights[2]},
        {"insight_id": a, "insight": insights[0]},
    ]
    assert set(dashboard) == {"id", "name", "refresh_seconds", "tiles", "created_at", "updated_at"}
    path = f"/api/dashboards/{dashboard['id']}"
    assert await call(client, project, "GET", path) == (200, dashboard)

    status, patched = await call(
        client,
        project,
        "PATCH",
        path,
        {"refresh_seconds": 0, "tiles": [{"insight_id": b}, {"insight_id": a}, {"insight_id": b}]},
    )
    assert status == 200 and patched["refresh_seconds"] == 0 and patched["name"] == "Main"
    assert [t["insight_id"] for t in patched["tiles"]] == [b, a, b]
    status, renamed = await call(client, project, "PATCH", path, {"name": "Renamed"})
    assert [t["insight_id"] for t in renamed["tiles"]] == [b, a, b]  # tiles untouched without "tiles"

    await call(client, project, "DELETE", f"/api/insights/{b}")
    assert [t["insight_id"] for t in (await call(client, project, "GET", path))[1]["tiles"]] == [a]
    _, empty = await call(
        client, project, "POST", "/api/dashboards", {"name": "Empty", "refresh_seconds": 10}
    )
    assert empty["tiles"] == [] and empty["refresh_seconds"] == 10
    _, listed = await call(client, project, "GET", "/api/dashboards")
    assert [d["id"] for d in listed["dashboards"]] == [empty["id"], dashboard["id"]]

    assert await call(client, project, "DELETE", path) == (204, None)
    assert (await call(client, project, "GET", path))[0] == 404
    assert (await call(client, project, "GET", f"/api/insights/{a}"))[
        0
    ] == 200  # an insight outlives its tiles


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "d", "refresh_seconds": 5}, "refresh_seconds:"),
        ({"name": "d", "refresh_seconds": 86401}, "refresh_seconds:"),
        ({"name": "d", "refresh_seconds": "300"}, "refresh_seconds:"),
        ({"name": "d", "refresh_seconds": True}, "refresh_seconds:"),
        ({"name": "d", "tiles": {"insight_id": 1}}, "tiles:"),
        ({"name": "d", "tiles": [{"insight": 1}]}, "tiles[0].insight_id:"),
        ({"name": "d", "tiles": [{"insight_id": "1"}]}, "tiles[0].insight_id:"),
    ],
)
async def test_bad_dashboards_are_400_naming_the_field(
    client: TestClient, project: Project, body: Any, field: str
) -> None:
    status, answer = await call(client, project, "POST", "/api/dashboards", body)
    assert status == 400 and answer["code"] == "invalid_request" and answer["detail"].startswith(field), (
        answer
    )


async def test_a_tile_of_another_projects_insight_is_400_and_changes_nothing(
    client: TestClient, project: Project, other: Project
) -> None:
    _, theirs = await call(
        client, other, "POST", "/api/insights", {"name": "t", "kind": "trends", "query": TRENDS}
    )
    _, mine = await call(
        client, project, "POST", "/api/insights", {"name": "m", "kind": "trends", "query": TRENDS}
    )
    tiles = [{"insight_id": mine["id"]}, {"insight_id": theirs["id"]}]
    status, answer = await call(client, project, "POST", "/api/dashboards", {"name": "d", "tiles": tiles})
    assert (status, answer["code"]) == (400, "invalid_request") and answer["detail"].startswith(
        "tiles[1].insight_id:"
    )
    assert (await call(client, project, "GET", "/api/dashboards"))[1] == {
        "dashboards": []
    }  # nothing half-made
    _, dashboard = await call(client, project, "POST", "/api/dashboards", {"name": "d", "tiles": tiles[:1]})
    status, answer = await call(
        client, project, "PATCH", f"/api/dashboards/{dashboard['id']}", {"tiles": [{"insight_id": 999999999}]}
    )
    assert status == 400 and answer["detail"].startswith("tiles[0].insight_id:")
    assert (await call(client, project, "GET", f"/api/dashboards/{dashboard['id']}"))[1] == dashboard

"""Projects (me, create), API keys (401s) and the result cache (hits, refresh, per project)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.analytics.support import ADMIN, RANGE_A, TZ_A, World, auth, post

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]


async def test_projects_me_is_the_callers_project(client: TestClient, world: World) -> None:
    for side, timezone in ((world.a, TZ_A), (world.b, "UTC")):
        response = await client.get("/api/projects/me", headers=auth(side.key))
        answer = await response.json()
        assert response.status == 200 and answer["id"] == side.project.id and answer["timezone"] == timezone


async def test_create_a_project_with_the_admin_key(client: TestClient) -> None:
    response = await client.post("/api/projects", json={"name": "new", "timezone": "Asia/Kolkata"},
                                 headers=auth(ADMIN))  # fmt: skip
    created = await response.json()
    assert response.status == 201 and created["timezone"] == "Asia/Kolkata" and created["api_key"]
    response = await client.get("/api/projects/me", headers=auth(created["api_key"]))
    assert (await response.json())["id"] == created["id"]


@pytest.mark.parametrize(
    ("body", "code"),
    [({"name": "x", "timezone": "Mars/Olympus"}, "invalid_timezone"), ({"name": ""}, "invalid_name"),
     ({"timezone": "UTC"}, "invalid_name"), ({"name": "x", "timezone": 5}, "invalid_timezone")],
)  # fmt: skip
async def test_a_bad_project_is_400(client: TestClient, body: dict[str, Any], code: str) -> None:
    response = await client.post("/api/projects", json=body, headers=auth(ADMIN))
    assert response.status == 400 and (await response.json())["code"] == code


@pytest.mark.parametrize(
    "headers", [{}, auth("nope"), {"Authorization": "Basic xyz"}], ids=["none", "wrong", "basic"]
)
async def test_creating_a_project_needs_the_admin_key(client: TestClient, headers: dict[str, str]) -> None:
    response = await client.post("/api/projects", json={"name": "x"}, headers=headers)
    assert response.status == 401 and (await response.json())["code"] == "invalid_admin_key"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/trends"), ("POST", "/api/funnels"), ("POST", "/api/retention"), ("POST", "/api/sessions"),
     ("POST", "/api/paths"), ("GET", "/api/events"), ("GET", "/api/persons/user-1"), ("GET", "/api/projects/me")],
)  # fmt: skip
@pytest.mark.parametrize("headers", [{}, auth("nope"), auth(ADMIN)], ids=["none", "wrong", "admin-key"])
async def test_project_endpoints_need_a_project_key(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await client.request(
        method, path, json={"events": [{"event": "x"}], **RANGE_A}, headers=headers
    )
    assert response.status == 401 and (await response.json())["code"] == "invalid_api_key"


async def test_result_cache_hits_refreshes_and_never_crosses_projects(
    client: TestClient, world: World
) -> None:
    body = {"events": [{"event": "signed_up"}], "measure": "totals", "date_from": "2026-10-30",
            "date_to": "2026-11-02"}  # fmt: skip

    async def ask(key: str, extra: dict[str, Any] | None = None) -> tuple[str, Any]:
        response = await client.post("/api/trends", json={**body, **(extra or {})}, headers=auth(key))
        assert response.status == 200
        return response.headers["X-Cache"], await response.json()

    first = await ask(world.a.key)
    again = await ask(world.a.key)
    assert (first[0], again[0]) == ("miss", "hit") and first[1] == again[1]
    assert (await ask(world.a.key, {"refresh": True})) == ("miss", first[1])
    assert (await ask(world.a.key))[0] == "hit"
    other = await ask(world.b.key)
    assert other[0] == "miss" and other[1] != first[1]


async def test_errors_are_not_cached(client: TestClient, world: World) -> None:
    for _ in range(2):
        response = await client.post("/api/trends", json={"events": [], **RANGE_A}, headers=auth(world.a.key))
        assert response.status == 400 and response.headers.get("X-Cache") != "hit"


async def test_the_cache_key_ignores_key_order(client: TestClient, world: World) -> None:
    body = {"steps": [{"event": "$pageview"}, {"event": "purchase"}], "window_seconds": 1800, **RANGE_A}
    status, first = await post(client, "/api/funnels", world.a.key, body, refresh=False)
    response = await client.post(
        "/api/funnels", json=dict(reversed(list(body.items()))), headers=auth(world.a.key)
    )
    assert status == 200 and response.headers["X-Cache"] == "hit" and await response.json() == first

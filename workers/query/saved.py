"""Saved insights and dashboards of them (the web app, issue 11); every answer is the caller's project's only.

`GET|POST /api/insights`, `GET|PATCH|DELETE /api/insights/{id}`, `GET|POST /api/dashboards`,
`GET|PATCH|DELETE /api/dashboards/{id}`. An insight is of a kind of workers.query.insights, its query
checked by that kind's parser. Postgres statements: sql/postgres/web/.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from workers.projects import Project
from workers.query.http import POOL_KEY, error, json_response, project_endpoint
from workers.query.insights import INSIGHTS
from workers.query.sql import BadRequest, postgres

MAX_TILES = 100
ID = re.compile(r"[0-9]{1,18}")


# insights


def _id(request: web.Request) -> int | None:
    raw = request.match_info["id"]
    return int(raw) if ID.fullmatch(raw) else None


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body: not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("body: a JSON object")
    return body


class BadName(ValueError):
    pass


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
        raise BadName("name: required, 1 to 200 characters, no NUL")
    return name.strip()


def _checked_query(kind: str, query: Any) -> str:
    """The query as JSON text once it passes its kind's parser (fields named `query.<field>`)."""
    if not isinstance(query, dict):
        raise BadRequest(f"query: required, a JSON object (a {kind} request)")
    try:
        INSIGHTS[kind].parse(query)
    except BadRequest as exc:
        raise BadRequest(f"query.{exc}") from None
    text = orjson.dumps(query).decode()
    if "\\u0000" in text:  # Postgres jsonb cannot hold NUL
        raise BadRequest("query: must not contain NUL (\\u0000)")
    return text


def _insight(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["id"], "name": r["name"], "kind": r["kind"], "query": orjson.loads(r["query"]),
            "created_at": r["created_at"].isoformat(), "updated_at": r["updated_at"].isoformat()}  # fmt: skip


def _insight_not_found(request: web.Request) -> web.Response:
    return error(404, "insight_not_found", f"no insight {request.match_info['id'][:40]!r} in this project")


async def insights_list(request: web.Request, project: Project) -> web.StreamResponse:
    rows = await request.app[POOL_KEY].fetch(postgres("insights_list.sql"), project.id, None)
    return json_response({"insights": [_insight(r) for r in rows]})


async def insight_create(request: web.Request, project: Project) -> web.StreamResponse:
    body = _body(await request.read())
    try:
        name = _name(body)
    except BadName as exc:
        return error(400, "invalid_name", str(exc))
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in INSIGHTS:
        raise BadRequest(f"kind: one of {', '.join(INSIGHTS)}")
    query = _checked_query(kind, body.get("query"))
    row = await request.app[POOL_KEY].fetchrow(postgres("insight_create.sql"), project.id, name, kind, query)
    return json_response(_insight(row), status=201)


async def insight_get(request: web.Request, project: Project) -> web.StreamResponse:
    insight_id = _id(request)
    rows = [] if insight_id is None else await request.app[POOL_KEY].fetch(
        postgres("insights_list.sql"), project.id, [insight_id]
    )  # fmt: skip
    return json_response(_insight(rows[0])) if rows else _insight_not_found(request)


async def insight_patch(request: web.Request, project: Project) -> web.StreamResponse:
    insight_id, pool = _id(request), request.app[POOL_KEY]
    rows = (
        []
        if insight_id is None
        else await pool.fetch(postgres("insights_list.sql"), project.id, [insight_id])
    )
    if not rows:
        return _insight_not_found(request)
    body = _body(await request.read())
    if "kind" in body:
        raise BadRequest("kind: an insight keeps its kind; save a new insight instead")
    try:
        name = _name(body) if "name" in body else None
    except BadName as exc:
        return error(400, "invalid_name", str(exc))
    query = _checked_query(rows[0]["kind"], body["query"]) if "query" in body else None
    row = await pool.fetchrow(postgres("insight_update.sql"), project.id, insight_id, name, query)
    return json_response(_insight(row)) if row else _insight_not_found(request)


async def insight_delete(request: web.Request, project: Project) -> web.StreamResponse:
    insight_id = _id(request)
    deleted = insight_id is not None and await request.app[POOL_KEY].fetchval(
        postgres("insight_delete.sql"), project.id, insight_id
    )
    return web.Response(status=204) if deleted else _insight_not_found(request)


# dashboards


def _refresh_seconds(body: dict[str, Any]) -> int:
    value = body["refresh_seconds"]
    if not isinstance(value, int) or isinstance(value, bool) or not (value == 0 or 10 <= value <= 86400):
        raise BadRequest("refresh_seconds: 0 (never) or a whole number of seconds from 10 to 86400")
    return value


def _tiles(body: dict[str, Any]) -> list[int]:
    tiles = body["tiles"]
    if not isinstance(tiles, list) or len(tiles) > MAX_TILES:
        raise BadRequest(f'tiles: a list of at most {MAX_TILES} {{"insight_id": <id>}}')
    ids = []
    for n, tile in enumerate(tiles):
        insight_id = tile.get("insight_id") if isinstance(tile, dict) else None
        if not isinstance(insight_id, int) or isinstance(insight_id, bool) or not 0 < insight_id < 2**63:
            raise BadRequest(f"tiles[{n}].insight_id: an insight id (integer)")
        ids.append(insight_id)
    return ids


async def _dashboards(
    conn: asyncpg.Connection, project: Project, dashboard_id: int | None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(postgres("dashboards_list.sql"), project.id, dashboard_id)
    tiles: dict[int, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
    for t in await conn.fetch(postgres("dashboard_tiles.sql"), list(tiles)):
        tiles[t["dashboard_id"]].append({"insight_id": t["id"], "insight": _insight(t)})
    return [
        {"id": r["id"], "name": r["name"], "refresh_seconds": r["refresh_seconds"], "tiles": tiles[r["id"]],
         "created_at": r["created_at"].isoformat(), "updated_at": r["updated_at"].isoformat()}
        for r in rows
    ]  # fmt: skip


async def _write_tiles(conn: asyncpg.Connection, project: Project, dashboard_id: int, ids: list[int]) -> None:
    owned = {r["id"] for r in await conn.fetch(postgres("insights_owned.sql"), project.id, ids)}
    for n, insight_id in enumerate(ids):
        if insight_id not in owned:
            raise BadRequest(f"tiles[{n}].insight_id: no insight {insight_id} in this project")
    await conn.execute(postgres("tiles_clear.sql"), dashboard_id)
    try:
        await conn.execute(postgres("tiles_insert.sql"), dashboard_id, ids)
    except asyncpg.ForeignKeyViolationError:  # an insight deleted since the check above
        raise BadRequest("tiles: an insight was deleted meanwhile; send the tiles again") from None


def _dashboard_not_found(request: web.Request) -> web.Response:
    return error(
        404, "dashboard_not_found", f"no dashboard {request.match_info['id'][:40]!r} in this project"
    )


async def dashboards_list(request: web.Request, project: Project) -> web.StreamResponse:
    async with request.app[POOL_KEY].acquire() as conn:
        return json_response({"dashboards": await _dashboards(conn, project, None)})


async def dashboard_create(request: web.Request, project: Project) -> web.StreamResponse:
    body = _body(await request.read())
    try:
        name = _name(body)
    except BadName as exc:
        return error(400, "invalid_name", str(exc))
    refresh = _refresh_seconds(body) if "refresh_seconds" in body else 300
    ids = _tiles(body) if "tiles" in body else []
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        dashboard_id = await conn.fetchval(postgres("dashboard_create.sql"), project.id, name, refresh)
        await _write_tiles(conn, project, dashboard_id, ids)
        (dashboard,) = await _dashboards(conn, project, dashboard_id)
    return json_response(dashboard, status=201)


async def dashboard_get(request: web.Request, project: Project) -> web.StreamResponse:
    dashboard_id = _id(request)
    if dashboard_id is None:
        return _dashboard_not_found(request)
    async with request.app[POOL_KEY].acquire() as conn:
        found = await _dashboards(conn, project, dashboard_id)
    return json_response(found[0]) if found else _dashboard_not_found(request)


async def dashboard_patch(request: web.Request, project: Project) -> web.StreamResponse:
    dashboard_id = _id(request)
    if dashboard_id is None:
        return _dashboard_not_found(request)
    body = _body(await request.read())
    try:
        name = _name(body) if "name" in body else None
    except BadName as exc:
        return error(400, "invalid_name", str(exc))
    refresh = _refresh_seconds(body) if "refresh_seconds" in body else None
    ids = _tiles(body) if "tiles" in body else None
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        if (
            await conn.fetchval(postgres("dashboard_update.sql"), project.id, dashboard_id, name, refresh)
            is None
        ):
            return _dashboard_not_found(request)
        if ids is not None:
            await _write_tiles(conn, project, dashboard_id, ids)
        (dashboard,) = await _dashboards(conn, project, dashboard_id)
    return json_response(dashboard)


async def dashboard_delete(request: web.Request, project: Project) -> web.StreamResponse:
    dashboard_id = _id(request)
    deleted = dashboard_id is not None and await request.app[POOL_KEY].fetchval(
        postgres("dashboard_delete.sql"), project.id, dashboard_id
    )
    return web.Response(status=204) if deleted else _dashboard_not_found(request)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/insights", project_endpoint(insights_list))
    router.add_post("/api/insights", project_endpoint(insight_create))
    router.add_get("/api/insights/{id}", project_endpoint(insight_get))
    router.add_patch("/api/insights/{id}", project_endpoint(insight_patch))
    router.add_delete("/api/insights/{id}", project_endpoint(insight_delete))
    router.add_get("/api/dashboards", project_endpoint(dashboards_list))
    router.add_post("/api/dashboards", project_endpoint(dashboard_create))
    router.add_get("/api/dashboards/{id}", project_endpoint(dashboard_get))
    router.add_patch("/api/dashboards/{id}", project_endpoint(dashboard_patch))
    router.add_delete("/api/dashboards/{id}", project_endpoint(dashboard_delete))

"""The web app's endpoints (issue 11), besides the analytics ones: the project's names and their types, a
list of persons, saved insights and dashboards of them. Every answer is the caller's project's only.

`GET /api/definitions`, `GET /api/persons?search=&limit=&cursor=`, `GET|POST /api/insights`,
`GET|PATCH|DELETE /api/insights/{id}`, `GET|POST /api/dashboards`, `GET|PATCH|DELETE /api/dashboards/{id}`.
Postgres statements: sql/postgres/web/; ClickHouse statements: sql/clickhouse/queries/.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import structlog
from aiohttp import web

from workers import funnels, paths, retention, sessions, trends
from workers.clickhouse import ClickHouseError, ClickHouseUnavailable
from workers.http import POOL_KEY, caller, error, json_response, refused, run
from workers.projects import Project
from workers.trends import BadRequest, fragment

log = structlog.get_logger(__name__)
SQL = Path(__file__).resolve().parent.parent / "sql" / "postgres" / "web"
PARSERS: dict[str, Callable[[Any], Any]] = {
    "trends": trends.parse_request,
    "funnels": funnels.parse_request,
    "retention": retention.parse_request,
    "sessions": sessions.parse_request,
    "paths": paths.parse_request,
}
# JSONType -> the type the web app shows; Null says nothing
TYPES = {"Int64": "Numeric", "UInt64": "Numeric", "Double": "Numeric", "Bool": "Boolean",
         "String": "String", "Array": "Array", "Object": "Object"}  # fmt: skip
TYPE_SAMPLE = 10_000
PERSONS_LIMIT, PERSONS_MAX_LIMIT = 50, 1000
MAX_TILES = 100
ID = re.compile(r"[0-9]{1,18}")
ProjectHandler = Callable[[web.Request, Project], Awaitable[web.StreamResponse]]


@cache
def _sql(name: str) -> str:
    return (SQL / name).read_text()


def _project_endpoint(handler: ProjectHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The caller's project, then the handler; a 400 for BadRequest, a 503 when Postgres is down."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        project = await caller(request)
        if isinstance(project, web.Response):
            return project
        try:
            return await handler(request, project)
        except BadRequest as exc:
            return error(400, "invalid_request", str(exc))
        except (OSError, asyncpg.PostgresError) as exc:
            log.error("postgres_unavailable", error=str(exc))
            return error(503, "postgres_unavailable", str(exc))

    return endpoint


# definitions


def _types(rows: list[dict[str, Any]]) -> dict[str, str]:
    """name -> the most common type seen (ties: the type name first in order)."""
    seen: dict[str, Counter[str]] = {}
    for r in rows:
        if r["type"] in TYPES:
            seen.setdefault(r["name"], Counter())[TYPES[r["type"]]] += int(r["seen"])
    return {name: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for name, c in seen.items()}


async def definitions(request: web.Request, project: Project) -> web.StreamResponse:
    params = {"project_id": project.id, "sample": TYPE_SAMPLE}
    try:
        names = await run(request.app, "definitions", fragment("definitions.sql"), params)
        events = _types(await run(request.app, "definitions", fragment("event_property_types.sql"), params))
        persons = _types(await run(request.app, "definitions", fragment("person_property_types.sql"), params))
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return refused(exc)
    of = {kind: sorted(r["name"] for r in names if r["kind"] == kind) for kind in
          ("event", "event_property", "person_property")}  # fmt: skip
    return json_response({
        "events": of["event"],
        "event_properties": [{"name": n, "type": events.get(n)} for n in of["event_property"]],
        "person_properties": [{"name": n, "type": persons.get(n)} for n in of["person_property"]],
    })  # fmt: skip


# persons


def _persons_cursor(raw: str) -> tuple[datetime, uuid.UUID]:
    try:
        moment, _, person = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        return datetime.fromisoformat(moment), uuid.UUID(person)
    except (ValueError, binascii.Error, UnicodeError):
        raise BadRequest("cursor: not a next_cursor of this endpoint") from None


async def persons_list(request: web.Request, project: Project) -> web.StreamResponse:
    query = request.query
    search = query.get("search") or None
    if search is not None and "\x00" in search:
        raise BadRequest("search: must not contain NUL (\\u0000)")
    raw_limit = query.get("limit", str(PERSONS_LIMIT))
    if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= PERSONS_MAX_LIMIT:
        raise BadRequest(f"limit: an integer from 1 to {PERSONS_MAX_LIMIT}")
    limit = int(raw_limit)
    after, after_id = _persons_cursor(query["cursor"]) if query.get("cursor") else (None, None)
    rows = await request.app[POOL_KEY].fetch(
        _sql("persons_list.sql"), project.id, search.lower() if search else None, after, after_id, limit + 1
    )
    persons = [
        {"id": str(r["id"]), "distinct_ids": list(r["distinct_ids"]), "properties": orjson.loads(r["properties"]),
         "is_identified": r["is_identified"], "created_at": r["created_at"].isoformat()}
        for r in rows[:limit]
    ]  # fmt: skip
    cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        cursor = base64.urlsafe_b64encode(f"{last['created_at'].isoformat()}|{last['id']}".encode()).decode()
    return json_response({"persons": persons, "next_cursor": cursor})


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
        PARSERS[kind](query)
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
    rows = await request.app[POOL_KEY].fetch(_sql("insights_list.sql"), project.id, None)
    return json_response({"insights": [_insight(r) for r in rows]})


async def insight_create(request: web.Request, project: Project) -> web.StreamResponse:
    body = _body(await request.read())
    try:
        name = _name(body)
    except BadName as exc:
        return error(400, "invalid_name", str(exc))
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in PARSERS:
        raise BadRequest(f"kind: one of {', '.join(PARSERS)}")
    query = _checked_query(kind, body.get("query"))
    row = await request.app[POOL_KEY].fetchrow(_sql("insight_create.sql"), project.id, name, kind, query)
    return json_response(_insight(row), status=201)


async def insight_get(request: web.Request, project: Project) -> web.StreamResponse:
    insight_id = _id(request)
    rows = [] if insight_id is None else await request.app[POOL_KEY].fetch(
        _sql("insights_list.sql"), project.id, [insight_id]
    )  # fmt: skip
    return json_response(_insight(rows[0])) if rows else _insight_not_found(request)


async def insight_patch(request: web.Request, project: Project) -> web.StreamResponse:
    insight_id, pool = _id(request), request.app[POOL_KEY]
    rows = [] if insight_id is None else await pool.fetch(_sql("insights_list.sql"), project.id, [insight_id])
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
    row = await pool.fetchrow(_sql("insight_update.sql"), project.id, insight_id, name, query)
    return json_response(_insight(row)) if row else _insight_not_found(request)


async def insight_delete(request: web.Request, project: Project) -> web.StreamResponse:
    insight_id = _id(request)
    deleted = insight_id is not None and await request.app[POOL_KEY].fetchval(
        _sql("insight_delete.sql"), project.id, insight_id
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
    rows = await conn.fetch(_sql("dashboards_list.sql"), project.id, dashboard_id)
    tiles: dict[int, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
    for t in await conn.fetch(_sql("dashboard_tiles.sql"), list(tiles)):
        tiles[t["dashboard_id"]].append({"insight_id": t["id"], "insight": _insight(t)})
    return [
        {"id": r["id"], "name": r["name"], "refresh_seconds": r["refresh_seconds"], "tiles": tiles[r["id"]],
         "created_at": r["created_at"].isoformat(), "updated_at": r["updated_at"].isoformat()}
        for r in rows
    ]  # fmt: skip


async def _write_tiles(conn: asyncpg.Connection, project: Project, dashboard_id: int, ids: list[int]) -> None:
    owned = {r["id"] for r in await conn.fetch(_sql("insights_owned.sql"), project.id, ids)}
    for n, insight_id in enumerate(ids):
        if insight_id not in owned:
            raise BadRequest(f"tiles[{n}].insight_id: no insight {insight_id} in this project")
    await conn.execute(_sql("tiles_clear.sql"), dashboard_id)
    try:
        await conn.execute(_sql("tiles_insert.sql"), dashboard_id, ids)
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
        dashboard_id = await conn.fetchval(_sql("dashboard_create.sql"), project.id, name, refresh)
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
        if await conn.fetchval(_sql("dashboard_update.sql"), project.id, dashboard_id, name, refresh) is None:
            return _dashboard_not_found(request)
        if ids is not None:
            await _write_tiles(conn, project, dashboard_id, ids)
        (dashboard,) = await _dashboards(conn, project, dashboard_id)
    return json_response(dashboard)


async def dashboard_delete(request: web.Request, project: Project) -> web.StreamResponse:
    dashboard_id = _id(request)
    deleted = dashboard_id is not None and await request.app[POOL_KEY].fetchval(
        _sql("dashboard_delete.sql"), project.id, dashboard_id
    )
    return web.Response(status=204) if deleted else _dashboard_not_found(request)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/definitions", _project_endpoint(definitions))
    router.add_get("/api/persons", _project_endpoint(persons_list))
    router.add_get("/api/insights", _project_endpoint(insights_list))
    router.add_post("/api/insights", _project_endpoint(insight_create))
    router.add_get("/api/insights/{id}", _project_endpoint(insight_get))
    router.add_patch("/api/insights/{id}", _project_endpoint(insight_patch))
    router.add_delete("/api/insights/{id}", _project_endpoint(insight_delete))
    router.add_get("/api/dashboards", _project_endpoint(dashboards_list))
    router.add_post("/api/dashboards", _project_endpoint(dashboard_create))
    router.add_get("/api/dashboards/{id}", _project_endpoint(dashboard_get))
    router.add_patch("/api/dashboards/{id}", _project_endpoint(dashboard_patch))
    router.add_delete("/api/dashboards/{id}", _project_endpoint(dashboard_delete))

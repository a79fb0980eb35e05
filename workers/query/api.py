"""The query API on port 8001: routes, auth, middleware (measure, the key's concurrency), endpoint limits.

`POST /api/sql` (the operator key, DEV_API_KEY): the statement runs wrapped as a subquery under ClickHouse
`readonly=1` with row and time limits, so a write, a DDL statement, a second statement or a table function
that touches files is refused by ClickHouse itself and answered 400; nothing changes.

Project endpoints (`Authorization: Bearer <project api key>`; the key decides the project):
`GET /api/projects/me`, `POST /api/<insight>` for each of workers.query.insights (trends, funnels,
retention, sessions, paths, stickiness, lifecycle), `GET /api/events` (workers.query.events), `GET /api/persons/{distinct_id}` and
`GET /api/persons` (workers.query.persons), `GET /api/definitions` (workers.query.definitions), saved
insights and dashboards (workers.query.saved), cohorts (workers.query.cohorts), `GET /api/live`
(workers.query.live), `POST /graphql` (workers.query.graphql_api), and the web app's
files on every other GET path (workers.query.static). `POST /api/projects` (ADMIN_API_KEY) creates a
project.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import orjson
import structlog
from aiohttp import web

from workers.clickhouse import ClickHouse, ClickHouseError, ClickHouseUnavailable
from workers.metrics import QUERY_REJECTED, QUERY_REQUESTS, QUERY_SECONDS
from workers.migrate import migrate_postgres
from workers.projects import Project, ProjectCache, ensure_project
from workers.query import cohorts, definitions, graphql_api, live, persons, saved, static
from workers.query.cache import ResultCache
from workers.query.definitions import DEFINITIONS_KEY
from workers.query.events import events_list
from workers.query.http import (
    CLICKHOUSE_KEY,
    LIMITS_KEY,
    POOL_KEY,
    PROJECTS_KEY,
    SETTINGS_KEY,
    bearer,
    caller,
    error,
    json_response,
    project_endpoint,
    refused,
)
from workers.query.insights import CACHE_KEY, INSIGHTS, cached_answer
from workers.query.sql import BadRequest
from workers.query.tables import csv_text
from workers.settings import Settings, SettingsError

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# issue 10: limits. The endpoints that run ClickHouse statements, each under its own limits
# (QUERY_ENDPOINT_LIMITS) and, per API key, QUERY_KEY_CONCURRENCY at a time.
# `definitions` and `live` (issue 11) too; the live stream polls under its limits but holds no slot: it is
# open for as long as the browser's page is.
# issue 12: `cohorts` (their members' listing; a computation writes, so it runs without them).
ENDPOINTS = ("sql", *INSIGHTS, "events", "persons", "definitions", "live", "cohorts")
STREAMING = ("live",)
RETRY_AFTER_SECONDS = 1


def _authorized(request: web.Request, key: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


async def _json_body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def _project_json(project: Project) -> dict[str, Any]:
    return {"id": project.id, "name": project.name, "api_token": project.api_token,
            "api_key": project.api_key, "timezone": project.timezone}  # fmt: skip


async def projects_me(request: web.Request) -> web.Response:
    project = await caller(request)
    if isinstance(project, web.Response):
        return project
    return json_response(_project_json(project))


async def create_project(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    if not hmac.compare_digest(bearer(request).encode(), settings.admin_api_key.encode()):
        return error(401, "invalid_admin_key", "send Authorization: Bearer <ADMIN_API_KEY>")
    try:
        body = await _json_body(request)
    except BadRequest as exc:
        return error(400, "invalid_json", str(exc))
    name = body.get("name") if isinstance(body, dict) else None
    timezone = body.get("timezone", "UTC") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        return error(400, "invalid_name", "name: required, 1 to 200 characters")
    try:
        ZoneInfo(timezone) if isinstance(timezone, str) and timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        timezone = None
    if not isinstance(timezone, str) or not timezone:
        return error(400, "invalid_timezone", "timezone: an IANA time zone name, e.g. Europe/Berlin")
    project = await ensure_project(request.app[POOL_KEY], name.strip(), timezone=timezone)
    return json_response(_project_json(project), status=201)


def analytics(name: str) -> Handler:
    """`POST /api/<name>`: the caller's project, the parsed request (400 naming what is wrong, or an event or
    property the project never used), then the answer, from the result cache when it holds one (header
    `X-Cache: hit|miss`): JSON, or the insight's table as CSV when the request accepts `text/csv`."""

    async def endpoint(request: web.Request) -> web.Response:
        project = await caller(request)
        if isinstance(project, web.Response):
            return project
        try:
            result, hit = await cached_answer(request.app, name, project, await _json_body(request))
        except BadRequest as exc:
            return error(400, "invalid_request", str(exc))
        except (OSError, asyncpg.PostgresError) as exc:
            return error(503, "postgres_unavailable", str(exc))
        except definitions.UnknownName as exc:
            return error(400, exc.code, str(exc))
        except (ClickHouseError, ClickHouseUnavailable) as exc:
            return refused(exc)
        headers = {"X-Cache": "hit" if hit else "miss"}
        if "text/csv" in request.headers.get("Accept", ""):
            headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
            csv = csv_text(INSIGHTS[name].table(orjson.loads(result)))
            return web.Response(text=csv, content_type="text/csv", charset="utf-8", headers=headers)
        return web.Response(body=result, content_type="application/json", headers=headers)

    return endpoint


def readonly_sql(statement: str, max_rows: int) -> str:
    body = statement.strip().rstrip(";").strip()
    return f"SELECT * FROM (\n{body}\n) LIMIT {max_rows + 1}"


async def sql(request: web.Request) -> web.Response:
    settings, ch = request.app[SETTINGS_KEY], request.app[CLICKHOUSE_KEY]
    if not _authorized(request, settings.dev_api_key):
        return error(401, "invalid_api_key", "send Authorization: Bearer <api key>")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return error(400, "invalid_json", str(exc))
    statement = body.get("query") if isinstance(body, dict) else None
    if not isinstance(statement, str) or not statement.strip():
        return error(400, "missing_query", 'send {"query": "SELECT ..."}')
    limits: dict[str, Any] = {
        "readonly": 1,
        **request.app[LIMITS_KEY]["sql"],
        "max_result_rows": settings.query_max_rows + 1,
        "result_overflow_mode": "break",
    }
    started = time.perf_counter()
    try:
        rows = await ch.query(readonly_sql(statement, settings.query_max_rows), settings=limits)
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return refused(exc)
    truncated = len(rows) > settings.query_max_rows
    rows = rows[: settings.query_max_rows]
    return web.Response(
        body=orjson.dumps(
            {"rows": rows, "row_count": len(rows), "truncated": truncated,
             "elapsed_seconds": round(time.perf_counter() - started, 6)},
            default=str,
        ),
        content_type="application/json",
    )  # fmt: skip


@web.middleware
async def _measure(request: web.Request, handler: Any) -> web.StreamResponse:
    started = time.perf_counter()
    endpoint = request.match_info.route.resource.canonical if request.match_info.route.resource else "unknown"
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        response = exc
    QUERY_REQUESTS.labels(endpoint, str(response.status)).inc()
    QUERY_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
    if isinstance(response, web.HTTPException) and response.status >= 400:
        return error(
            response.status, "not_found" if response.status == 404 else "http_error", response.reason
        )
    return response


def endpoint_name(request: web.Request) -> str:
    """`trends` for /api/trends, `persons` for /api/persons/{distinct_id}: the name QUERY_ENDPOINT_LIMITS uses."""
    resource = request.match_info.route.resource
    parts = resource.canonical.split("/") if resource is not None else []
    return parts[2] if len(parts) > 2 and parts[1] == "api" else ""


def endpoint_limits(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each endpoint's ClickHouse limits: QUERY_MAX_SECONDS, QUERY_MAX_MEMORY_BYTES and
    QUERY_MAX_ROWS_TO_READ, with the endpoint's own from QUERY_ENDPOINT_LIMITS over them."""
    unknown = sorted(set(settings.query_endpoint_limits) - set(ENDPOINTS))
    if unknown:
        raise SettingsError(
            f"QUERY_ENDPOINT_LIMITS: unknown endpoints {unknown}; known: {', '.join(ENDPOINTS)}"
        )
    defaults = {
        "max_execution_time": settings.query_max_seconds,
        "max_memory_usage": settings.query_max_memory_bytes,
        "max_rows_to_read": settings.query_max_rows_to_read,
    }
    return {e: {**defaults, **settings.query_endpoint_limits.get(e, {})} for e in ENDPOINTS}


class KeySlots:
    """At most `per_key` requests in flight per API key; one key's slots are never another's."""

    def __init__(self, per_key: int) -> None:
        self._per_key = per_key
        self._busy: dict[str, int] = {}

    def take(self, key: str) -> bool:
        busy = self._busy.get(key, 0)
        if busy >= self._per_key:
            return False
        self._busy[key] = busy + 1
        return True

    def give_back(self, key: str) -> None:
        busy = self._busy.pop(key) - 1
        if busy:
            self._busy[key] = busy


SLOTS_KEY = web.AppKey("key_slots", KeySlots)


@web.middleware
async def _key_budget(request: web.Request, handler: Any) -> web.StreamResponse:
    """An endpoint that runs ClickHouse statements waits for nothing: past the key's concurrency it is a 429
    with Retry-After at once. A GraphQL request takes one slot for all its fields (workers.query.graphql_api)."""
    name = "graphql" if request.path == "/graphql" else endpoint_name(request)
    if name not in (*ENDPOINTS, "graphql") or name in STREAMING:
        return await handler(request)
    key, slots = bearer(request), request.app[SLOTS_KEY]
    if not slots.take(key):
        QUERY_REJECTED.labels("concurrency").inc()
        answer = error(429, "too_many_concurrent_queries",
                        f"this key already has {request.app[SETTINGS_KEY].query_key_concurrency} queries running"
                        " (QUERY_KEY_CONCURRENCY); retry when one has finished")  # fmt: skip
        answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return answer
    try:
        response: web.StreamResponse = await handler(request)
        return response
    finally:
        slots.give_back(key)


def create_app(settings: Settings, ch: ClickHouse, pool: asyncpg.Pool) -> web.Application:
    app = web.Application(middlewares=[_measure, _key_budget], client_max_size=1024 * 1024)
    app[LIMITS_KEY] = endpoint_limits(settings)
    app[SLOTS_KEY] = KeySlots(settings.query_key_concurrency)
    app[SETTINGS_KEY] = settings
    app[CLICKHOUSE_KEY] = ch
    app[POOL_KEY] = pool
    app[PROJECTS_KEY] = ProjectCache(pool, settings.project_cache_seconds)
    app.router.add_post("/api/sql", sql)
    app.router.add_get("/api/projects/me", projects_me)
    app.router.add_post("/api/projects", create_project)
    app[CACHE_KEY] = ResultCache(
        settings.query_cache_seconds, settings.query_cache_recent_seconds, settings.query_cache_entries
    )
    app[DEFINITIONS_KEY] = definitions.Definitions(ch)
    for name in INSIGHTS:
        app.router.add_post(f"/api/{name}", analytics(name))
    app.router.add_get("/api/events", project_endpoint(events_list))
    app.router.add_get("/api/persons/{distinct_id}", project_endpoint(persons.person))
    app.router.add_get("/api/definitions", project_endpoint(definitions.definitions))
    app.router.add_get("/api/persons", project_endpoint(persons.persons_list))
    saved.add_routes(app)
    cohorts.add_routes(app)
    live.add_routes(app)
    graphql_api.add_routes(app)
    static.add_routes(app)  # last: every GET path no route above took
    return app


async def main(settings: Settings, stopping: asyncio.Event, ch: ClickHouse) -> None:
    await migrate_postgres(settings.postgres_dsn)
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)
    runner = web.AppRunner(create_app(settings, ch, pool), access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.query_host, settings.query_port).start()
        log.info("query_api_listening", host=settings.query_host, port=settings.query_port)
        await stopping.wait()
    finally:
        await runner.cleanup()
        await pool.close()

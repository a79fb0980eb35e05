"""query: the HTTP API on port 8001.

`POST /api/sql` (the operator key, DEV_API_KEY): the statement runs wrapped as a subquery under ClickHouse
`readonly=1` with row and time limits, so a write, a DDL statement, a second statement or a table function
that touches files is refused by ClickHouse itself and answered 400; nothing changes.

Project endpoints (`Authorization: Bearer <project api key>`; the key decides the project):
`GET /api/projects/me`, `POST /api/trends`, `POST /api/funnels`, `POST /api/retention`, `POST /api/sessions`, `POST /api/paths`, `GET /api/events`,
`GET /api/persons/{distinct_id}`. `POST /api/projects` (ADMIN_API_KEY) creates a project.
Issue 11, the web app: `GET /api/definitions`, `GET /api/persons`, insights and dashboards (workers.web_api),
`GET /api/live` (workers.live), and the app's files on every other GET path (workers.web_static).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import orjson
import structlog
from aiohttp import web

from workers import (
    definitions,
    events_api,
    funnels,
    live,
    paths,
    retention,
    rollups,
    sessions,
    trends,
    web_api,
    web_static,
)
from workers.clickhouse import ClickHouse, ClickHouseError, ClickHouseUnavailable
from workers.http import CLICKHOUSE_KEY, LIMITS_KEY, POOL_KEY, PROJECTS_KEY, SETTINGS_KEY, run
from workers.http import bearer as _bearer
from workers.http import caller as _caller
from workers.http import error as _error
from workers.http import json_response as _json
from workers.http import refused as _refused
from workers.metrics import QUERY_REJECTED, QUERY_REQUESTS, QUERY_SECONDS
from workers.migrate import migrate_postgres
from workers.projects import Project, ProjectCache, ensure_project
from workers.result_cache import ResultCache
from workers.settings import Settings, SettingsError

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CACHE_KEY = web.AppKey("result_cache", ResultCache)
DEFINITIONS_KEY = web.AppKey("definitions", definitions.Definitions)
# issue 10: limits. The endpoints that run ClickHouse statements, each under its own limits
# (QUERY_ENDPOINT_LIMITS) and, per API key, QUERY_KEY_CONCURRENCY at a time.
# `definitions` and `live` (issue 11) too; the live stream polls under its limits but holds no slot: it is
# open for as long as the browser's page is.
ENDPOINTS = (
    "sql", "trends", "funnels", "retention", "sessions", "paths", "events", "persons", "definitions", "live"
)  # fmt: skip
STREAMING = ("live",)
RETRY_AFTER_SECONDS = 1


def _authorized(request: web.Request, key: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


async def _json_body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise trends.BadRequest(f"the body is not valid JSON: {exc}") from None


def _project_json(project: Project) -> dict[str, Any]:
    return {"id": project.id, "name": project.name, "api_token": project.api_token,
            "api_key": project.api_key, "timezone": project.timezone}  # fmt: skip


async def projects_me(request: web.Request) -> web.Response:
    project = await _caller(request)
    if isinstance(project, web.Response):
        return project
    return _json(_project_json(project))


async def create_project(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    if not hmac.compare_digest(_bearer(request).encode(), settings.admin_api_key.encode()):
        return _error(401, "invalid_admin_key", "send Authorization: Bearer <ADMIN_API_KEY>")
    try:
        body = await _json_body(request)
    except trends.BadRequest as exc:
        return _error(400, "invalid_json", str(exc))
    name = body.get("name") if isinstance(body, dict) else None
    timezone = body.get("timezone", "UTC") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        return _error(400, "invalid_name", "name: required, 1 to 200 characters")
    try:
        ZoneInfo(timezone) if isinstance(timezone, str) and timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        timezone = None
    if not isinstance(timezone, str) or not timezone:
        return _error(400, "invalid_timezone", "timezone: an IANA time zone name, e.g. Europe/Berlin")
    project = await ensure_project(request.app[POOL_KEY], name.strip(), timezone=timezone)
    return _json(_project_json(project), status=201)


async def _run(request: web.Request, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """A statement of the request's endpoint, read-only, under the endpoint's ClickHouse limits."""
    return await run(request.app, endpoint_name(request), statement, params)


async def _trends(request: web.Request, q: trends.TrendsQuery, project: Project) -> Any:
    active = None
    if q.measure == "active_percent":
        active = await _run(request, *trends.sql_for(q, None, project.id, project.timezone))

    async def run(statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await _run(request, statement, params)

    async def raw(part: trends.TrendsQuery, series: trends.Series) -> list[dict[str, Any]]:
        return await _run(request, *trends.sql_for(part, series, project.id, project.timezone))

    covers = None
    if any(rollups.applies(q, series) for series in q.series):
        covers = await rollups.coverage(run, project.id)
    result = []
    for series in q.series:
        if rollups.applies(q, series):
            rows = await rollups.totals(run, raw, q, series, project.id, project.timezone, covers)
        else:
            rows = await raw(q, series)
        if q.measure in ("frequency", "distribution"):
            shape = trends.frequency_values if q.measure == "frequency" else trends.distribution_values
            labels, values = shape(rows)
            result.append(
                {"event": series.event, "breakdown_value": None, "labels": labels, "values": values}
            )
            continue
        for value in trends.top_breakdown_values(q, rows) if q.breakdown else [""]:
            of_value = [r for r in rows if r["breakdown_value"] == value]
            labels, values = trends.series_values(q, of_value, project.timezone, active)
            result.append({"event": series.event, "breakdown_value": value if q.breakdown else None,
                           "labels": labels, "values": values})  # fmt: skip
    return {"series": result}


async def _funnels(request: web.Request, q: funnels.FunnelQuery, project: Project) -> Any:
    return funnels.result(q, await _run(request, *funnels.sql_for(q, project.id, project.timezone)))


async def _retention(request: web.Request, q: retention.RetentionQuery, project: Project) -> Any:
    rows = await _run(request, *retention.sql_for(q, project.id, project.timezone))
    return {"cohorts": retention.cohorts(q, rows)}


async def _sessions(request: web.Request, q: sessions.SessionsQuery, project: Project) -> Any:
    rows = await _run(request, *sessions.sql_for(q, project.id, project.timezone))
    return sessions.result(q, rows, project.timezone)


async def _paths(request: web.Request, q: paths.PathsQuery, project: Project) -> Any:
    rows = await _run(request, *paths.sql_for(q, project.id, project.timezone))
    return {"edges": [{"source": r["source"], "target": r["target"], "value": r["value"]} for r in rows]}


def analytics(
    parse: Callable[[Any], Any], answer: Callable[[web.Request, Any, Project], Awaitable[Any]]
) -> Handler:
    """An analytics endpoint: the caller's project, the parsed request (400 naming what is wrong, or an
    event or property the project never used), then the answer, from the result cache when it holds one
    (header `X-Cache: hit|miss`)."""

    async def endpoint(request: web.Request) -> web.Response:
        project = await _caller(request)
        if isinstance(project, web.Response):
            return project
        try:
            body = await _json_body(request)
            q = parse(body)
        except trends.BadRequest as exc:
            return _error(400, "invalid_request", str(exc))
        cache = request.app[CACHE_KEY]
        key, refresh = ResultCache.key(request.path, project.id, body)
        if not refresh and (cached := cache.get(key)) is not None:
            return web.Response(body=cached, content_type="application/json", headers={"X-Cache": "hit"})
        try:
            await request.app[DEFINITIONS_KEY].check(project.id, definitions.names_in(q))
            result = orjson.dumps(await answer(request, q, project))
        except definitions.UnknownName as exc:
            return _error(400, exc.code, str(exc))
        except (ClickHouseError, ClickHouseUnavailable) as exc:
            return _refused(exc)
        cache.put(key, body, result, project.timezone)
        return web.Response(body=result, content_type="application/json", headers={"X-Cache": "miss"})

    return endpoint


async def _events_page(request: web.Request, project: Project, distinct_ids: list[str] | None) -> Any:
    statement, params, limit = events_api.events_sql(project.id, dict(request.query), distinct_ids)
    # A page needs limit + 1 distinct events (one more: is there a next page?). Newest first, so look at
    # the last day before the page's end, then 8x further back, up to `after`; and read more rows when
    # redelivered copies left the page short.
    end = min(params["before"], datetime.now(UTC) + timedelta(days=1))
    days, scan = 1, 2 * (limit + 1)
    while True:
        since = max(params["after"], end - timedelta(days=days))
        rows = await _run(request, statement, {**params, "after": since, "scan": scan})
        distinct = events_api.distinct(rows)
        if len(distinct) > limit or (len(rows) < scan and since == params["after"]):
            return events_api.page(distinct, limit)
        if len(rows) < scan:
            days *= 8
        else:
            scan *= 4


async def events_endpoint(request: web.Request) -> web.Response:
    project = await _caller(request)
    if isinstance(project, web.Response):
        return project
    try:
        return _json(await _events_page(request, project, None))
    except trends.BadRequest as exc:
        return _error(400, "invalid_request", str(exc))
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return _refused(exc)


async def person_endpoint(request: web.Request) -> web.Response:
    project = await _caller(request)
    if isinstance(project, web.Response):
        return project
    distinct_id = request.match_info["distinct_id"]
    if "\x00" in distinct_id:  # Postgres text cannot hold NUL, so no person has such an id
        return _error(404, "person_not_found", f"no person has the distinct id {distinct_id[:200]!r}")
    try:
        async with request.app[POOL_KEY].acquire() as conn:
            person = await conn.fetchrow(
                """SELECT p.id, p.properties::text AS properties, p.is_identified, p.created_at, p.version
                   FROM person_distinct_ids d JOIN persons p ON p.id = d.person_id
                   WHERE d.project_id = $1 AND d.distinct_id = $2""",
                project.id,
                distinct_id,
            )
            ids = [] if person is None else [
                r["distinct_id"] for r in await conn.fetch(
                    "SELECT distinct_id FROM person_distinct_ids WHERE person_id = $1 ORDER BY distinct_id",
                    person["id"],
                )
            ]  # fmt: skip
    except (OSError, asyncpg.PostgresError) as exc:
        return _error(503, "postgres_unavailable", str(exc))
    if person is None:
        return _error(404, "person_not_found", f"no person has the distinct id {distinct_id[:200]!r}")
    try:
        events = await _events_page(request, project, ids)
    except trends.BadRequest as exc:
        return _error(400, "invalid_request", str(exc))
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return _refused(exc)
    return _json({
        "id": str(person["id"]), "distinct_ids": ids, "properties": orjson.loads(person["properties"]),
        "is_identified": person["is_identified"], "created_at": person["created_at"].isoformat(),
        "version": person["version"], **events,
    })  # fmt: skip


def readonly_sql(statement: str, max_rows: int) -> str:
    body = statement.strip().rstrip(";").strip()
    return f"SELECT * FROM (\n{body}\n) LIMIT {max_rows + 1}"


async def sql(request: web.Request) -> web.Response:
    settings, ch = request.app[SETTINGS_KEY], request.app[CLICKHOUSE_KEY]
    if not _authorized(request, settings.dev_api_key):
        return _error(401, "invalid_api_key", "send Authorization: Bearer <api key>")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _error(400, "invalid_json", str(exc))
    statement = body.get("query") if isinstance(body, dict) else None
    if not isinstance(statement, str) or not statement.strip():
        return _error(400, "missing_query", 'send {"query": "SELECT ..."}')
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
        return _refused(exc)
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
        return _error(
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
    with Retry-After at once."""
    if endpoint_name(request) not in ENDPOINTS or endpoint_name(request) in STREAMING:
        return await handler(request)
    key, slots = _bearer(request), request.app[SLOTS_KEY]
    if not slots.take(key):
        QUERY_REJECTED.labels("concurrency").inc()
        answer = _error(429, "too_many_concurrent_queries",
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
    app.router.add_post("/api/trends", analytics(trends.parse_request, _trends))
    app.router.add_post("/api/funnels", analytics(funnels.parse_request, _funnels))
    app.router.add_post("/api/retention", analytics(retention.parse_request, _retention))
    app.router.add_post("/api/sessions", analytics(sessions.parse_request, _sessions))
    app.router.add_post("/api/paths", analytics(paths.parse_request, _paths))
    app.router.add_get("/api/events", events_endpoint)
    app.router.add_get("/api/persons/{distinct_id}", person_endpoint)
    web_api.add_routes(app)
    live.add_routes(app)
    web_static.add_routes(app)  # last: every GET path no route above took
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

"""query: the HTTP API on port 8001. For now the read-only SQL endpoint, `POST /api/sql`.

The statement runs wrapped as a subquery under ClickHouse `readonly=1` with row and time limits, so a
write, a DDL statement, a second statement or a table function that touches files is refused by
ClickHouse itself and answered 400; nothing changes.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import orjson
import structlog
from aiohttp import web

from workers.clickhouse import ClickHouse, ClickHouseError, ClickHouseUnavailable
from workers.metrics import QUERY_REQUESTS, QUERY_SECONDS
from workers.settings import Settings

log = structlog.get_logger(__name__)

SETTINGS_KEY = web.AppKey("settings", Settings)
CLICKHOUSE_KEY = web.AppKey("clickhouse", ClickHouse)


def _error(status: int, code: str, detail: str) -> web.Response:
    return web.json_response({"type": "error", "code": code, "detail": detail}, status=status)


def _authorized(request: web.Request, key: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


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
        "max_execution_time": settings.query_max_seconds,
        "max_result_rows": settings.query_max_rows + 1,
        "result_overflow_mode": "break",
    }
    started = time.perf_counter()
    try:
        rows = await ch.query(readonly_sql(statement, settings.query_max_rows), settings=limits)
    except ClickHouseError as exc:
        return _error(400, "query_error", str(exc))
    except ClickHouseUnavailable as exc:
        log.error("clickhouse_unavailable", error=str(exc))
        return _error(503, "clickhouse_unavailable", str(exc))
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


def create_app(settings: Settings, ch: ClickHouse) -> web.Application:
    app = web.Application(middlewares=[_measure], client_max_size=1024 * 1024)
    app[SETTINGS_KEY] = settings
    app[CLICKHOUSE_KEY] = ch
    app.router.add_post("/api/sql", sql)
    return app


async def main(settings: Settings, stopping: asyncio.Event, ch: ClickHouse) -> None:
    runner = web.AppRunner(create_app(settings, ch), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.query_host, settings.query_port).start()
    log.info("query_api_listening", host=settings.query_host, port=settings.query_port)
    await stopping.wait()
    await runner.cleanup()

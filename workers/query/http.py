"""What the query API's endpoints share: the app's keys, JSON answers and errors, the caller's project, and
ClickHouse statements run read-only under an endpoint's limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import structlog
from aiohttp import web

from workers.clickhouse import ClickHouse, ClickHouseError, ClickHouseUnavailable
from workers.metrics import QUERY_REJECTED
from workers.projects import Project, ProjectCache
from workers.query.sql import BadRequest, Rows, Run
from workers.settings import Settings

SETTINGS_KEY = web.AppKey("settings", Settings)
CLICKHOUSE_KEY = web.AppKey("clickhouse", ClickHouse)
POOL_KEY = web.AppKey("pool", asyncpg.Pool)
PROJECTS_KEY = web.AppKey("projects", ProjectCache)
LIMITS_KEY = web.AppKey("endpoint_limits", dict)
# ClickHouse error codes of a valid request that hit a limit (TOO_MANY_ROWS, TIMEOUT_EXCEEDED,
# MEMORY_LIMIT_EXCEEDED) -> the limit
TOO_BIG = {158: "max_rows_to_read", 159: "max_execution_time", 241: "max_memory_usage"}
log = structlog.get_logger(__name__)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error(status: int, code: str, detail: str) -> web.Response:
    return json_response({"type": "error", "code": code, "detail": detail}, status=status)


def bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def caller(request: web.Request) -> Project | web.Response:
    """The project whose API key the request carries, or the 401 (503 when Postgres is down) to send."""
    key = bearer(request)
    if not key:
        return error(401, "invalid_api_key", "send Authorization: Bearer <project api key>")
    try:
        project = await request.app[PROJECTS_KEY].by_api_key(key)
    except (OSError, asyncpg.PostgresError) as exc:
        return error(503, "postgres_unavailable", str(exc))
    if project is None:
        return error(401, "invalid_api_key", "no project has this API key")
    return project


def runner(app: web.Application, endpoint: str) -> Run:
    """Runs a statement of `endpoint`, read-only, under the endpoint's ClickHouse limits
    (QUERY_ENDPOINT_LIMITS)."""

    async def run(statement: str, params: dict[str, Any]) -> Rows:
        limits = {"readonly": 1, **app[LIMITS_KEY][endpoint]}
        return await app[CLICKHOUSE_KEY].query(statement, params, settings=limits)

    return run


def refusal(exc: ClickHouseError | ClickHouseUnavailable) -> tuple[int, dict[str, str]]:
    """ClickHouse's refusal as the caller's answer: down is a 503, a valid statement over the time or
    memory limit a 503 naming the limit, any other refusal a 400 with ClickHouse's message."""
    if isinstance(exc, ClickHouseUnavailable):
        log.error("clickhouse_unavailable", error=str(exc))
        return 503, {"type": "error", "code": "clickhouse_unavailable", "detail": str(exc)}
    if exc.code in TOO_BIG:
        QUERY_REJECTED.labels(TOO_BIG[exc.code]).inc()
        detail = f"over the endpoint's {TOO_BIG[exc.code]}: {exc}"
        return 503, {"type": "error", "code": "query_too_expensive", "detail": detail}
    return 400, {"type": "error", "code": "query_error", "detail": str(exc)}


def refused(exc: ClickHouseError | ClickHouseUnavailable) -> web.Response:
    status, answer = refusal(exc)
    return json_response(answer, status=status)


ProjectHandler = Callable[[web.Request, Project], Awaitable[web.StreamResponse]]


def project_endpoint(handler: ProjectHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
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

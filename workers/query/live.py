"""`GET /api/live?event=&since=`: the project's events as they are stored, as Server-Sent Events.

Every LIVE_POLL_SECONDS the stream asks ClickHouse for the project's events stored (`inserted_at`) after
the last one it sent, oldest first, at most MAX_ROWS at a time, each uuid once (a redelivered copy is stored
again later). It starts at the moment of connecting, or at `since`. Only events whose own `timestamp` is
within LOOKBACK of now are looked at, so a poll stays cheap: an event sent with an older time is stored but
never shown here. A message: `id: <inserted_at>|<uuid>`, `event: event`, `data: {"uuid", "event",
"distinct_id", "person_id", "timestamp", "properties"}`; `: keepalive` every KEEPALIVE_SECONDS; `event:
error` with the JSON error when ClickHouse refuses a poll (the stream goes on). The stream holds none of
the key's concurrency slots and ends when the client goes away or the app shuts down.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from aiohttp import web

from workers.clickhouse import ClickHouseError, ClickHouseUnavailable
from workers.metrics import QUERY_LIVE_STREAMS
from workers.query.http import SETTINGS_KEY, caller, error, refusal, runner
from workers.query.sql import fragment

log = structlog.get_logger(__name__)
LOOKBACK = timedelta(days=2)
MAX_ROWS = 200
KEEPALIVE_SECONDS = 15.0
SEEN_UUIDS = 100_000  # uuids remembered per stream, to send each once
STOPPING_KEY = web.AppKey("live_stopping", asyncio.Event)


def _since(raw: str | None) -> datetime | web.Response:
    if not raw:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return error(400, "invalid_request", f"since: {raw[:100]!r} is not an ISO-8601 time")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def message(row: dict[str, Any]) -> bytes:
    data = {
        "uuid": row["uuid"], "event": row["event"], "distinct_id": row["distinct_id"],
        "person_id": row["person_id"], "timestamp": row["timestamp"],
        "properties": orjson.loads(row["properties"]) if row["properties"] else {},
    }  # fmt: skip
    moment = row["inserted_at"].replace(" ", "T") + "Z"  # 'YYYY-MM-DD hh:mm:ss.ffffff', UTC
    return f"id: {moment}|{row['uuid']}\nevent: event\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def live(request: web.Request) -> web.StreamResponse:
    project = await caller(request)
    if isinstance(project, web.Response):
        return project
    since = _since(request.query.get("since"))
    if isinstance(since, web.Response):
        return since
    event = request.query.get("event", "")
    stopping, poll_seconds = request.app[STOPPING_KEY], request.app[SETTINGS_KEY].live_poll_seconds
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"
    })  # fmt: skip
    await response.prepare(request)
    params: dict[str, Any] = {"project_id": project.id, "event": event, "after": since, "after_uuid": "",
                              "lookback_seconds": int(LOOKBACK.total_seconds()), "max_rows": MAX_ROWS}  # fmt: skip
    run = runner(request.app, "live")
    seen: OrderedDict[str, None] = OrderedDict()
    last_write = time.monotonic()
    QUERY_LIVE_STREAMS.inc()
    try:
        while not stopping.is_set() and request.transport is not None and not request.transport.is_closing():
            try:
                rows = await run(fragment("live.sql"), params)
            except (ClickHouseError, ClickHouseUnavailable) as exc:
                log.warning("live_poll_failed", project_id=project.id, error=str(exc))
                rows = []
                await response.write(b"event: error\ndata: " + orjson.dumps(refusal(exc)[1]) + b"\n\n")
                last_write = time.monotonic()
            for row in rows:
                params["after"], params["after_uuid"] = row["inserted_at"], row["uuid"]
                if row["uuid"] in seen:
                    continue
                seen[row["uuid"]] = None
                if len(seen) > SEEN_UUIDS:
                    seen.popitem(last=False)
                await response.write(message(row))
                last_write = time.monotonic()
            if time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                await response.write(b": keepalive\n\n")
                last_write = time.monotonic()
            if len(rows) < MAX_ROWS:  # a full page: the next one at once
                try:
                    await asyncio.wait_for(stopping.wait(), poll_seconds)
                except TimeoutError:
                    pass
    except ConnectionResetError:
        pass  # the client went away
    finally:
        QUERY_LIVE_STREAMS.dec()
    return response


async def _stop_streams(app: web.Application) -> None:
    app[STOPPING_KEY].set()


def add_routes(app: web.Application) -> None:
    app[STOPPING_KEY] = asyncio.Event()
    app.on_shutdown.append(_stop_streams)
    app.router.add_get("/api/live", live)

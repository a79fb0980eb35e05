"""Recent events, paged, newest first: `GET /api/events?event=&distinct_id=&filters=<JSON list>&after=<ISO>
&before=<ISO>&limit=&cursor=`, and a person's events (workers.query.persons). Paging: pass the answer's
`next_cursor` as `cursor`. With `format=ndjson|csv` (or `Accept: application/x-ndjson | text/csv`) it is an
export instead: every event of [after, before), oldest first, streamed in chunks of EVENTS_EXPORT_CHUNK_ROWS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from aiohttp import web

from workers.clickhouse import ClickHouseError, ClickHouseUnavailable
from workers.projects import Project
from workers.query import sql
from workers.query.cohorts import current_versions
from workers.query.http import POOL_KEY, SETTINGS_KEY, json_response, refused, runner
from workers.query.sql import BadRequest, Rows, Run
from workers.query.tables import csv_lines

MAX_LIMIT = 1000
EXPORTS = {"ndjson": "application/x-ndjson", "csv": "text/csv"}
EXPORT_COLUMNS = ("uuid", "event", "distinct_id", "person_id", "timestamp", "properties")
log = structlog.get_logger(__name__)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, tzinfo=UTC)


def _instant(value: str | None, name: str, default: datetime) -> datetime:
    if value is None or value == "":
        return default
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: {value!r} is not an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _limit(value: str | None) -> int:
    if value is None:
        return 100
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit: an integer from 1 to {MAX_LIMIT}")
    return int(value)


def query_filters(query: Mapping[str, str]) -> tuple[sql.Filter, ...]:
    """The `filters` of the query string (a JSON list)."""
    raw_filters = query.get("filters")
    try:
        return sql.filters(orjson.loads(raw_filters) if raw_filters else None, "query", person=False)
    except orjson.JSONDecodeError:
        raise BadRequest("filters: not a JSON list") from None


async def cohort_versions(app: web.Application, project: Project, query: Mapping[str, str]) -> dict[int, int]:
    """The current version of each cohort the query string's filters name (a 400 for another project's)."""
    references = sql.cohort_references(query_filters(query))
    return await current_versions(app[POOL_KEY], project.id, references)


def _narrowing(
    query: Mapping[str, str],
    params: dict[str, Any],
    distinct_ids: list[str] | None,
    versions: Mapping[int, int],
) -> str:
    """The statement's `filters` fragment: `event=`, `distinct_id=`, `filters=` and a person's ids."""
    filters = sql.with_cohort_versions(query_filters(query), versions)
    clauses = [sql.filter_sql(filters, "f", params)]
    if query.get("event"):
        params["event"] = query["event"]
        clauses.append("event = {event:String}")
    if query.get("distinct_id"):
        params["distinct_id"] = query["distinct_id"]
        clauses.append("distinct_id = {distinct_id:String}")
    if distinct_ids is not None:
        params["distinct_ids"] = distinct_ids
        clauses.append("distinct_id IN {distinct_ids:Array(String)}")
    return " AND ".join(clauses)


def events_sql(
    project_id: int,
    query: Mapping[str, str],
    distinct_ids: list[str] | None = None,
    versions: Mapping[int, int] | None = None,
) -> tuple[str, dict[str, Any], int]:
    """The statement for a page of events; `distinct_ids` restricts it to one person's ids; `versions`: the
    current version of each cohort the filters name."""
    params: dict[str, Any] = {
        "project_id": project_id,
        "before": _instant(query.get("before"), "before", LATEST),
        "before_uuid": "",
        "after": _instant(query.get("after"), "after", EARLIEST),
    }
    if query.get("cursor"):
        moment, _, event_uuid = query["cursor"].partition("|")
        params["before"], params["before_uuid"] = _instant(moment, "cursor", LATEST), event_uuid
    limit = _limit(query.get("limit"))
    filters = _narrowing(query, params, distinct_ids, versions or {})
    return sql.statement("events.sql", {"filters": filters}), params, limit


def distinct(rows: Rows) -> Rows:
    """Each event once: a redelivered copy has the same uuid and sorts right beside the first."""
    return [r for n, r in enumerate(rows) if n == 0 or r["uuid"] != rows[n - 1]["uuid"]]


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "properties": orjson.loads(row["properties"]) if row["properties"] else {}}


def page(rows: Rows, limit: int) -> dict[str, Any]:
    events = [event_json(r) for r in rows[:limit]]
    last = events[-1] if len(rows) > limit and events else None
    return {"events": events, "next_cursor": f"{last['timestamp']}|{last['uuid']}" if last else None}


async def events_page(
    run: Run,
    project: Project,
    query: Mapping[str, str],
    distinct_ids: list[str] | None,
    versions: Mapping[int, int] | None = None,
) -> Any:
    """A page of the project's events (`query`: the request's query string)."""
    statement, params, limit = events_sql(project.id, query, distinct_ids, versions)
    # A page needs limit + 1 distinct events (one more: is there a next page?). Newest first, so look at
    # the last day before the page's end, then 8x further back, up to `after`; and read more rows when
    # redelivered copies left the page short.
    end = min(params["before"], datetime.now(UTC) + timedelta(days=1))
    days, scan = 1, 2 * (limit + 1)
    while True:
        since = max(params["after"], end - timedelta(days=days))
        rows = await run(statement, {**params, "after": since, "scan": scan})
        unique = distinct(rows)
        if len(unique) > limit or (len(rows) < scan and since == params["after"]):
            return page(unique, limit)
        if len(rows) < scan:
            days *= 8
        else:
            scan *= 4


async def events_list(request: web.Request, project: Project) -> web.StreamResponse:
    """`GET /api/events`: a JSON page, or the export of a range as NDJSON or CSV."""
    versions = await cohort_versions(request.app, project, request.query)
    export = export_format(request)
    if export is not None:
        return await events_export(request, project, export, versions)
    try:
        return json_response(
            await events_page(runner(request.app, "events"), project, dict(request.query), None, versions)
        )
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return refused(exc)


def export_format(request: web.Request) -> str | None:
    """`ndjson` or `csv` for an export (`format=`, else the Accept header), None for a JSON page."""
    chosen = request.query.get("format")
    if chosen is not None and chosen != "json" and chosen not in EXPORTS:
        raise BadRequest(f"format: {chosen[:50]!r} is not one of json, {', '.join(EXPORTS)}")
    if chosen is None:
        accept = request.headers.get("Accept", "")
        chosen = next((f for f, content_type in EXPORTS.items() if content_type in accept), None)
    return None if chosen == "json" else chosen


def export_sql(
    project_id: int, query: Mapping[str, str], versions: Mapping[int, int]
) -> tuple[str, dict[str, Any]]:
    """The statement for the chunks of an export: [after, before), both required."""
    for name in ("after", "before"):
        if not query.get(name):
            raise BadRequest(f"{name}: required to export, an ISO-8601 time")
    after = _instant(query["after"], "after", EARLIEST)
    params: dict[str, Any] = {"project_id": project_id, "after": after, "from_time": after, "from_uuid": "",
                              "before": _instant(query["before"], "before", LATEST)}  # fmt: skip
    filters = _narrowing(query, params, None, versions)
    return sql.statement("events_export.sql", {"filters": filters}), params


async def export_chunks(run: Run, statement: str, params: dict[str, Any], chunk: int) -> AsyncIterator[Rows]:
    """The export's events, each once, oldest first, `chunk` stored rows at a time: each next chunk starts
    after the last (timestamp, uuid) read, so a redelivered copy of it is skipped too."""
    while True:
        rows = await run(statement, {**params, "chunk": chunk})
        if rows:
            yield distinct(rows)
        if len(rows) < chunk:
            return
        last = rows[-1]
        params = {
            **params,
            "from_time": _instant(last["timestamp"], "timestamp", EARLIEST),
            "from_uuid": last["uuid"],
        }


def export_lines(export: str, rows: Rows) -> bytes:
    events = [event_json(r) for r in rows]
    if export == "ndjson":
        return b"".join(orjson.dumps(e) + b"\n" for e in events)
    lines = ([*(e[c] for c in EXPORT_COLUMNS[:-1]), orjson.dumps(e["properties"]).decode()] for e in events)
    return "".join(csv_lines(lines)).encode()


async def events_export(
    request: web.Request, project: Project, export: str, versions: Mapping[int, int]
) -> web.StreamResponse:
    """Every event of the range, written chunk by chunk as ClickHouse answers, so memory stays bounded. A
    refusal of the first chunk is the usual JSON error; a later one can only cut the response short: the
    error propagates and aiohttp drops the connection without the last chunk, so the client sees a broken
    download rather than a complete-looking one."""
    statement, params = export_sql(project.id, request.query, versions)
    chunk = request.app[SETTINGS_KEY].events_export_chunk_rows
    chunks = export_chunks(runner(request.app, "events"), statement, params, chunk)
    try:
        first: Rows = await anext(chunks, [])
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return refused(exc)
    response = web.StreamResponse(headers={
        "Content-Type": f"{EXPORTS[export]}; charset=utf-8",
        "Content-Disposition": f'attachment; filename="events.{export}"',
    })  # fmt: skip
    await response.prepare(request)
    if export == "csv":
        await response.write("".join(csv_lines([EXPORT_COLUMNS])).encode())
    await response.write(export_lines(export, first))
    try:
        async for rows in chunks:
            await response.write(export_lines(export, rows))
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        log.error("events_export_cut_short", project_id=project.id, error=str(exc))
        raise
    await response.write_eof()
    return response

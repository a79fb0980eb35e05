"""Recent events, paged, newest first: `GET /api/events?event=&distinct_id=&filters=<JSON list>&after=<ISO>
&before=<ISO>&limit=&cursor=`, and a person's events (workers.query.persons). Paging: pass the answer's
`next_cursor` as `cursor`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from workers.clickhouse import ClickHouseError, ClickHouseUnavailable
from workers.projects import Project
from workers.query import sql
from workers.query.cohorts import current_versions
from workers.query.http import POOL_KEY, json_response, refused, runner
from workers.query.sql import BadRequest, Rows, Run

MAX_LIMIT = 1000
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


def events_sql(
    project_id: int,
    query: dict[str, str],
    distinct_ids: list[str] | None = None,
    cohort_versions: Mapping[int, int] | None = None,
) -> tuple[str, dict[str, Any], int]:
    """The statement for a page of events; `distinct_ids` restricts it to one person's ids;
    `cohort_versions`: the current version of each cohort the filters name."""
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
    filters = sql.with_cohort_versions(query_filters(query), cohort_versions or {})
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
    return sql.statement("events.sql", {"filters": " AND ".join(clauses)}), params, limit


def distinct(rows: Rows) -> Rows:
    """Each event once: a redelivered copy has the same uuid and sorts right beside the first."""
    return [r for n, r in enumerate(rows) if n == 0 or r["uuid"] != rows[n - 1]["uuid"]]


def page(rows: Rows, limit: int) -> dict[str, Any]:
    events = [
        {**r, "properties": orjson.loads(r["properties"]) if r["properties"] else {}} for r in rows[:limit]
    ]
    last = events[-1] if len(rows) > limit and events else None
    return {"events": events, "next_cursor": f"{last['timestamp']}|{last['uuid']}" if last else None}


async def events_page(
    run: Run,
    project: Project,
    query: dict[str, str],
    distinct_ids: list[str] | None,
    cohort_versions: Mapping[int, int] | None = None,
) -> Any:
    """A page of the project's events (`query`: the request's query string)."""
    statement, params, limit = events_sql(project.id, query, distinct_ids, cohort_versions)
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
    """`GET /api/events`; the cohorts its filters name are resolved first (a 400 for another project's)."""
    references = sql.cohort_references(query_filters(request.query))
    versions = await current_versions(request.app[POOL_KEY], project.id, references)
    try:
        return json_response(
            await events_page(runner(request.app, "events"), project, dict(request.query), None, versions)
        )
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return refused(exc)

"""Events and persons for the query API: recent events (paged, newest first) and one person's profile.

`GET /api/events?event=&distinct_id=&filters=<JSON list>&after=<ISO>&before=<ISO>&limit=&cursor=` and
`GET /api/persons/{distinct_id}?limit=&cursor=`: the person and all their distinct ids come from Postgres
(the source of truth), their events from ClickHouse. Paging: pass the answer's `next_cursor` as `cursor`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from workers.trends import BadRequest, _filter_sql, _filters, event_filters, statement

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


def events_sql(
    project_id: int, query: dict[str, str], distinct_ids: list[str] | None = None
) -> tuple[str, dict[str, Any], int]:
    """The statement for a page of events; `distinct_ids` restricts it to one person's ids."""
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
    raw_filters = query.get("filters")
    try:
        filters = event_filters(
            _filters(orjson.loads(raw_filters) if raw_filters else None, "query"), "query"
        )
    except orjson.JSONDecodeError:
        raise BadRequest("filters: not a JSON list") from None
    clauses = [_filter_sql(filters, "f", params)]
    if query.get("event"):
        params["event"] = query["event"]
        clauses.append("event = {event:String}")
    if query.get("distinct_id"):
        params["distinct_id"] = query["distinct_id"]
        clauses.append("distinct_id = {distinct_id:String}")
    if distinct_ids is not None:
        params["distinct_ids"] = distinct_ids
        clauses.append("distinct_id IN {distinct_ids:Array(String)}")
    return statement("events.sql", {"filters": " AND ".join(clauses)}), params, limit


def distinct(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event once: a redelivered copy has the same uuid and sorts right beside the first."""
    return [r for n, r in enumerate(rows) if n == 0 or r["uuid"] != rows[n - 1]["uuid"]]


def page(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    events = [
        {**r, "properties": orjson.loads(r["properties"]) if r["properties"] else {}} for r in rows[:limit]
    ]
    last = events[-1] if len(rows) > limit and events else None
    return {"events": events, "next_cursor": f"{last['timestamp']}|{last['uuid']}" if last else None}

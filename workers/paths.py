"""Paths: the most common event sequences per session, as edges `1_<event> -> 2_<event>` with counts.

A session (as the Flink job cuts them: session_events.sql) is its events in the range in time order; the path starts at the session's
first `start_event` (sessions without it are left out) or, with none given, at its first event, and is
cut to `steps` events. Each edge counts the sessions that took it; the `limit` biggest come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from workers.trends import BadRequest, _date, session_events, statement

MAX_STEPS = 10


@dataclass(frozen=True)
class PathsQuery:
    start_event: str | None
    steps: int
    date_from: date
    date_to: date
    limit: int


def parse_request(body: object) -> PathsQuery:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    start_event = body.get("start_event")
    if start_event is not None and (not isinstance(start_event, str) or not start_event):
        raise BadRequest("start_event: a non-empty string, or left out")
    steps = body.get("steps", 5)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 2 <= steps <= MAX_STEPS:
        raise BadRequest(f"steps: an integer from 2 to {MAX_STEPS}")
    limit = body.get("limit", 50)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise BadRequest("limit: an integer from 1 to 1000")
    date_from, date_to = _date(body, "date_from"), _date(body, "date_to")
    if date_to < date_from:
        raise BadRequest("date_to: before date_from")
    if (date_to - date_from).days > 92:
        raise BadRequest("date_from..date_to: at most 92 days")
    return PathsQuery(start_event, steps, date_from, date_to, limit)


def sql_for(q: PathsQuery, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    tz = ZoneInfo(timezone)
    params: dict[str, Any] = {
        "project_id": project_id, "steps": q.steps, "limit": q.limit,
        "start": datetime.combine(q.date_from, time(), tz),
        "end": datetime.combine(q.date_to + timedelta(days=1), time(), tz),
    }  # fmt: skip
    start = "1"
    if q.start_event is not None:
        params["start_event"] = q.start_event
        start = "indexOf(events, {start_event:String})"
    events = session_events("1")
    return statement("paths.sql", {"start": start, "session_events": events}), params

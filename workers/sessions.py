"""Sessions: a request -> bound ClickHouse SQL -> per bucket the sessions, average duration, bounce rate.

Sessions are the Flink job's (the `sessions` table, folded by `sessions_merged`): the SDK's session id, or
for events with none the gap-cut session of their distinct id. A session is bucketed by its start (project
time zone, `date_to` inclusive); its duration is last event - first event, and a bounce is a session of one
event. Filters are on events: a session counts when one of its events in the range matches them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from workers.trends import (
    INTERVALS,
    BadRequest,
    Filter,
    TrendsQuery,
    _date,
    _filter_sql,
    _filters,
    bucket_start,
    bucket_starts,
    event_filters,
    label,
    session_events,
    statement,
)


@dataclass(frozen=True)
class SessionsQuery:
    interval: str
    date_from: date
    date_to: date
    filters: tuple[Filter, ...]


def parse_request(body: object) -> SessionsQuery:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    interval = body.get("interval", "day")
    if interval not in INTERVALS:
        raise BadRequest(f"interval: {interval!r} is not one of {', '.join(INTERVALS)}")
    date_from, date_to = _date(body, "date_from"), _date(body, "date_to")
    if date_to < date_from:
        raise BadRequest("date_to: before date_from")
    if (date_to - date_from).days > 366 * 2:
        raise BadRequest("date_from..date_to: at most 732 days")
    if interval == "hour" and (date_to - date_from).days > 31:
        raise BadRequest("interval: 'hour' covers at most 31 days")
    return SessionsQuery(
        interval, date_from, date_to, event_filters(_filters(body.get("filters"), "sessions"), "sessions")
    )


def sql_for(q: SessionsQuery, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    tz = ZoneInfo(timezone)
    params: dict[str, Any] = {
        "project_id": project_id, "tz": timezone,
        "start": datetime.combine(q.date_from, time(), tz),
        "end": datetime.combine(q.date_to + timedelta(days=1), time(), tz),
    }  # fmt: skip
    matching = "1"
    if q.filters:
        events = session_events(_filter_sql(q.filters, "f", params))
        matching = f"session_id IN (SELECT session_id FROM ({events}))"
    return statement("sessions.sql", {"bucket": INTERVALS[q.interval], "sessions": matching}), params


def result(q: SessionsQuery, rows: list[dict[str, Any]], timezone: str) -> dict[str, Any]:
    tz = ZoneInfo(timezone)
    shape = TrendsQuery((), "totals", q.interval, q.date_from, q.date_to)
    labels = [label(s, q.interval) for s in bucket_starts(shape, tz)]
    by_label = {label(bucket_start(r["bucket"], tz), q.interval): r for r in rows}
    out: dict[str, Any] = {"labels": labels, "sessions": [], "avg_duration_seconds": [], "bounce_rate": []}
    for lab in labels:
        row = by_label.get(lab)
        out["sessions"].append(int(row["sessions"]) if row else 0)
        out["avg_duration_seconds"].append(round(float(row["avg_duration"]), 6) if row else 0)
        out["bounce_rate"].append(round(float(row["bounce_rate"]), 6) if row else 0)
    return out

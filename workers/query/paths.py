"""Paths: the most common event sequences per session, as edges `1_<event> -> 2_<event>` with counts.

A session (as the Flink job cuts them: session_events.sql) is its events in the range in time order; the path starts at the session's
first `start_event` (sessions without it are left out) or, with none given, at its first event, and is
cut to `steps` events. Each edge counts the sessions that took it; the `limit` biggest come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from workers.projects import Project
from workers.query import sql
from workers.query.sql import Name, Run
from workers.query.tables import Table, cell

MAX_STEPS = 10
MAX_DAYS = 92


@dataclass(frozen=True)
class PathsQuery:
    start_event: str | None
    steps: int
    date_from: date
    date_to: date
    limit: int


def parse(body: object) -> PathsQuery:
    body = sql.json_object(body)
    start_event = body.get("start_event")
    if start_event is not None and (not isinstance(start_event, str) or not start_event):
        raise sql.BadRequest("start_event: a non-empty string, or left out")
    steps = body.get("steps", 5)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 2 <= steps <= MAX_STEPS:
        raise sql.BadRequest(f"steps: an integer from 2 to {MAX_STEPS}")
    limit = body.get("limit", 50)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise sql.BadRequest("limit: an integer from 1 to 1000")
    date_from, date_to = sql.date_range(body, MAX_DAYS)
    return PathsQuery(start_event, steps, date_from, date_to, limit)


def names(q: PathsQuery) -> list[Name]:
    return [] if q.start_event is None else [("event", "start_event", q.start_event)]


async def answer(run: Run, q: PathsQuery, project: Project) -> dict[str, Any]:
    rows = await run(*sql_for(q, project.id, project.timezone))
    return {"edges": [{"source": r["source"], "target": r["target"], "value": r["value"]} for r in rows]}


def sql_for(q: PathsQuery, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    start, end = sql.bounds(q.date_from, q.date_to, ZoneInfo(timezone))
    params: dict[str, Any] = {
        "project_id": project_id,
        "steps": q.steps,
        "limit": q.limit,
        "start": start,
        "end": end,
    }
    first = "1"
    if q.start_event is not None:
        params["start_event"] = q.start_event
        first = "indexOf(events, {start_event:String})"
    return sql.statement("paths.sql", {"start": first, "session_events": sql.session_events("1")}), params


def table(answer: dict[str, Any]) -> Table:
    return ["Edge", "value"], [[f"{e['source']} → {e['target']}", cell(e["value"])] for e in answer["edges"]]

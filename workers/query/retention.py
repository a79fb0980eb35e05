"""Retention: a request -> bound ClickHouse SQL -> the cohort matrix.

A person's cohort is the period (day, or ISO week from Monday, in the project's time zone) of their first
`start_event` inside the range; `values[k]` counts the persons of that cohort who did `return_event`
(`"$any"`: any event) in the k-th period after it, and `values[0]` is the cohort's size. Return events
after `date_to` count, up to the last period asked for. Persons after merges, each event once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from workers.projects import Project
from workers.query import sql
from workers.query.sql import Name, Rows, Run
from workers.query.tables import Table, cell

PERIODS = {"day": "toDate(timestamp, {tz:String})", "week": "toMonday(timestamp, {tz:String})"}
MAX_PERIODS = 60
MAX_DAYS = 366


@dataclass(frozen=True)
class RetentionQuery:
    start_event: str
    return_event: str
    period: str
    periods: int
    date_from: date
    date_to: date


def parse(body: object) -> RetentionQuery:
    body = sql.json_object(body)
    start_event, return_event = body.get("start_event"), body.get("return_event")
    if not isinstance(start_event, str) or not start_event:
        raise sql.BadRequest("start_event: required, a string")
    if not isinstance(return_event, str) or not return_event:
        raise sql.BadRequest('return_event: required, a string ("$any" for any event)')
    period = body.get("period", "day")
    if period not in PERIODS:
        raise sql.BadRequest(f"period: {period!r} is not one of day, week")
    periods = body.get("periods", 7)
    if not isinstance(periods, int) or isinstance(periods, bool) or not 1 <= periods <= MAX_PERIODS:
        raise sql.BadRequest(f"periods: an integer from 1 to {MAX_PERIODS}")
    date_from, date_to = sql.date_range(body, MAX_DAYS)
    return RetentionQuery(start_event, return_event, period, periods, date_from, date_to)


def names(q: RetentionQuery) -> list[Name]:
    names: list[Name] = [("event", "start_event", q.start_event)]
    if q.return_event != "$any":
        names.append(("event", "return_event", q.return_event))
    return names


async def answer(run: Run, q: RetentionQuery, project: Project) -> dict[str, Any]:
    return {"cohorts": cohorts(q, await run(*sql_for(q, project.id, project.timezone)))}


def _step(q: RetentionQuery) -> timedelta:
    return timedelta(days=1 if q.period == "day" else 7)


def sql_for(q: RetentionQuery, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    tz = ZoneInfo(timezone)
    end_day = q.date_to + timedelta(days=1)
    last_cohort = q.date_to if q.period == "day" else q.date_to - timedelta(days=q.date_to.weekday())
    until_day = max(end_day, last_cohort + _step(q) * (q.periods + 1))
    start, end = sql.bounds(q.date_from, q.date_to, tz)
    params: dict[str, Any] = {
        "project_id": project_id, "tz": timezone, "start_event": q.start_event, "return_event": q.return_event,
        "start": start, "end": end, "until": datetime.combine(until_day, time(), tz),
    }  # fmt: skip
    returning = "1" if q.return_event == "$any" else "event = {return_event:String}"
    fragments = {"period": PERIODS[q.period], "return_event": returning, **sql.after_merges()}
    return sql.statement("retention.sql", fragments), params


def cohorts(q: RetentionQuery, rows: Rows) -> list[dict[str, Any]]:
    step = _step(q).days
    matrix: dict[date, list[int]] = {}
    for r in rows:
        cohort, period = date.fromisoformat(r["cohort"]), date.fromisoformat(r["period"])
        k = (period - cohort).days // step
        if k <= q.periods:
            matrix.setdefault(cohort, [0] * (q.periods + 1))[k] = int(r["persons"])
    return [{"date": d.isoformat(), "size": v[0], "values": v} for d, v in sorted(matrix.items())]


def table(answer: dict[str, Any]) -> Table:
    """A row per cohort (its date): its size, then the persons back in each period 0 … periods."""
    width = max((len(c["values"]) for c in answer["cohorts"]), default=0)
    rows = [[c["date"], cell(c["size"]), *(cell(v) for v in c["values"])] for c in answer["cohorts"]]
    return ["Cohort", "size", *map(str, range(width))], rows

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

from workers.trends import BadRequest, _date, fragment, statement

PERIODS = {"day": "toDate(timestamp, {tz:String})", "week": "toMonday(timestamp, {tz:String})"}
MAX_PERIODS = 60


@dataclass(frozen=True)
class RetentionQuery:
    start_event: str
    return_event: str
    period: str
    periods: int
    date_from: date
    date_to: date


def parse_request(body: object) -> RetentionQuery:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    start_event, return_event = body.get("start_event"), body.get("return_event")
    if not isinstance(start_event, str) or not start_event:
        raise BadRequest("start_event: required, a string")
    if not isinstance(return_event, str) or not return_event:
        raise BadRequest('return_event: required, a string ("$any" for any event)')
    period = body.get("period", "day")
    if period not in PERIODS:
        raise BadRequest(f"period: {period!r} is not one of day, week")
    periods = body.get("periods", 7)
    if not isinstance(periods, int) or isinstance(periods, bool) or not 1 <= periods <= MAX_PERIODS:
        raise BadRequest(f"periods: an integer from 1 to {MAX_PERIODS}")
    date_from, date_to = _date(body, "date_from"), _date(body, "date_to")
    if date_to < date_from:
        raise BadRequest("date_to: before date_from")
    if (date_to - date_from).days > 366:
        raise BadRequest("date_from..date_to: at most 366 days")
    return RetentionQuery(start_event, return_event, period, periods, date_from, date_to)


def _step(q: RetentionQuery) -> timedelta:
    return timedelta(days=1 if q.period == "day" else 7)


def sql_for(q: RetentionQuery, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    tz = ZoneInfo(timezone)
    end_day = q.date_to + timedelta(days=1)
    last_cohort = q.date_to if q.period == "day" else q.date_to - timedelta(days=q.date_to.weekday())
    until_day = max(end_day, last_cohort + _step(q) * (q.periods + 1))
    params: dict[str, Any] = {
        "project_id": project_id, "tz": timezone, "start_event": q.start_event, "return_event": q.return_event,
        "start": datetime.combine(q.date_from, time(), tz), "end": datetime.combine(end_day, time(), tz),
        "until": datetime.combine(until_day, time(), tz),
    }  # fmt: skip
    returning = "1" if q.return_event == "$any" else "event = {return_event:String}"
    fragments = {
        "period": PERIODS[q.period],
        "persons": fragment("person_overrides.sql"),
        "return_event": returning,
    }
    return statement("retention.sql", fragments), params


def cohorts(q: RetentionQuery, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    step = _step(q).days
    matrix: dict[date, list[int]] = {}
    for r in rows:
        cohort, period = date.fromisoformat(r["cohort"]), date.fromisoformat(r["period"])
        k = (period - cohort).days // step
        if k <= q.periods:
            matrix.setdefault(cohort, [0] * (q.periods + 1))[k] = int(r["persons"])
    return [{"date": d.isoformat(), "size": v[0], "values": v} for d, v in sorted(matrix.items())]

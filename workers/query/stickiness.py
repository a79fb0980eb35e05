"""Stickiness (PostHog): a request -> bound ClickHouse SQL -> per series, persons by active intervals.

The range's intervals (day, ISO week from Monday, or month, in the project's time zone) are trends'
buckets, the partial first and last included: N of them. For each series, `values[k - 1]` counts the
persons (after merges) who did the event, passing its filters, inside the range in exactly k of the N
intervals. Each event once: intervals are counted as a set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from workers.projects import Project
from workers.query import sql
from workers.query.sql import Name, Rows, Run, Series
from workers.query.tables import Table, series_table

MAX_EVENTS = 10
MAX_DAYS = 365  # 366 daily intervals
# An instant's interval as a number that grows by one from each interval to the next (weeks from Monday).
INTERVAL_NUMBERS = {"day": "toRelativeDayNum", "week": "toRelativeWeekNum", "month": "toRelativeMonthNum"}


@dataclass(frozen=True)
class StickinessQuery:
    series: tuple[Series, ...]
    interval: str
    date_from: date
    date_to: date


def interval_field(body: dict[str, Any]) -> str:
    """day, week or month (not hour): shared with lifecycle."""
    interval = body.get("interval", "day")
    if interval not in INTERVAL_NUMBERS:
        raise sql.BadRequest(f"interval: {interval!r} is not one of {', '.join(INTERVAL_NUMBERS)}")
    return str(interval)


def parse(body: object) -> StickinessQuery:
    body = sql.json_object(body)
    series = sql.series_list(body, "events", MAX_EVENTS)
    interval = interval_field(body)
    return StickinessQuery(series, interval, *sql.date_range(body, MAX_DAYS))


def names(q: StickinessQuery) -> list[Name]:
    return sql.series_names(q.series, "events")


def interval_labels(interval: str, date_from: date, date_to: date, timezone: str) -> list[str]:
    """The range's intervals, labelled as trends labels its buckets: shared with lifecycle."""
    starts = sql.bucket_starts(interval, date_from, date_to, ZoneInfo(timezone))
    return [sql.label(s, interval) for s in starts]


async def answer(run: Run, q: StickinessQuery, project: Project) -> dict[str, Any]:
    intervals = len(interval_labels(q.interval, q.date_from, q.date_to, project.timezone))
    result = []
    for series in q.series:
        rows = await run(*sql_for(q, series, project.id, project.timezone))
        result.append({"event": series.event, **persons_by_intervals(rows, intervals)})
    return {"series": result}


def sql_for(q: StickinessQuery, series: Series, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    start, end = sql.bounds(q.date_from, q.date_to, ZoneInfo(timezone))
    params: dict[str, Any] = {
        "project_id": project_id, "tz": timezone, "start": start, "end": end, "event": series.event,
    }  # fmt: skip
    uses_persons = any(f.type == "person" for f in series.filters)
    fragments = {
        "series_events": sql.fragment("series_events.sql"), "event": "event = {event:String}",
        "events_table": "events", "hot": sql.HOT_COLUMNS, **sql.after_merges(),
        "interval_number": INTERVAL_NUMBERS[q.interval], "filters": sql.filter_sql(series.filters, "f", params),
        "person_properties": sql.fragment("persons_join.sql") if uses_persons else "",
    }  # fmt: skip
    return sql.statement("stickiness.sql", fragments), params


def persons_by_intervals(rows: Rows, intervals: int) -> dict[str, list[Any]]:
    counts = {int(r["intervals"]): int(r["persons"]) for r in rows}
    return {
        "labels": [str(k) for k in range(1, intervals + 1)],
        "values": [counts.get(k, 0) for k in range(1, intervals + 1)],
    }


def table(answer: dict[str, Any]) -> Table:
    """As trends: a row per series, a column per number of intervals."""
    return series_table(answer)

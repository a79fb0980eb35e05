"""Lifecycle (PostHog): a request -> bound ClickHouse SQL -> per interval the new, returning, resurrecting
and dormant persons.

With persons after merges and active(p, B) = p did the event, passing the filters, in interval B (day, ISO
week from Monday, or month, in the project's time zone; the range's intervals are trends' buckets), for
each interval B of the range: new = active in B, and their first matching event ever (before the range
too) is in B; returning = active in B and B - 1, not new; resurrecting = active in B, not in B - 1, first
matching event before B; dormant = -(active in B - 1, not in B). B - 1 of the first interval is the one
just before it. Unlike PostHog, "new" is not the person's creation time: persons created by an import
carry their import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from workers.projects import Project
from workers.query import sql, stickiness
from workers.query.sql import Filter, Name, Rows, Run
from workers.query.tables import Table, cell

STATUSES = ("new", "returning", "resurrecting", "dormant")
MAX_DAYS = stickiness.MAX_DAYS


@dataclass(frozen=True)
class LifecycleQuery:
    event: str
    filters: tuple[Filter, ...]
    interval: str
    date_from: date
    date_to: date


def parse(body: object) -> LifecycleQuery:
    body = sql.json_object(body)
    event = body.get("event")
    if not isinstance(event, str) or not event:
        raise sql.BadRequest("event: required, a string")
    filters = sql.filters(body.get("filters"), "lifecycle")
    interval = stickiness.interval_field(body)
    return LifecycleQuery(event, filters, interval, *sql.date_range(body, MAX_DAYS))


def names(q: LifecycleQuery) -> list[Name]:
    return [("event", "event", q.event), *sql.filter_names(q.filters, "lifecycle")]


async def answer(run: Run, q: LifecycleQuery, project: Project) -> dict[str, Any]:
    labels = stickiness.interval_labels(q.interval, q.date_from, q.date_to, project.timezone)
    rows = await run(*sql_for(q, len(labels), project.id, project.timezone))
    return {"labels": labels, **statuses(rows, len(labels))}


def sql_for(q: LifecycleQuery, intervals: int, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    start, end = sql.bounds(q.date_from, q.date_to, ZoneInfo(timezone))
    params: dict[str, Any] = {
        "project_id": project_id, "tz": timezone, "start": start, "end": end, "event": q.event,
        "intervals": intervals,
    }  # fmt: skip
    uses_persons = any(f.type == "person" for f in q.filters)
    fragments = {
        "hot": sql.HOT_COLUMNS, **sql.after_merges(),
        "interval_number": stickiness.INTERVAL_NUMBERS[q.interval],
        "filters": sql.filter_sql(q.filters, "f", params),
        "person_properties": sql.fragment("persons_join.sql") if uses_persons else "",
    }  # fmt: skip
    return sql.statement("lifecycle.sql", fragments), params


def statuses(rows: Rows, intervals: int) -> dict[str, list[int]]:
    """Per status the persons of each interval; dormant ones negative."""
    out = {status: [0] * intervals for status in STATUSES}
    for r in rows:
        persons = int(r["persons"])
        out[r["status"]][int(r["number"])] = -persons if r["status"] == "dormant" else persons
    return out


def table(answer: dict[str, Any]) -> Table:
    """A row per status, a column per interval."""
    return ["Status", *map(cell, answer["labels"])], [[s, *map(cell, answer[s])] for s in STATUSES]

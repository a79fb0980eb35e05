"""Sessions: a request -> bound ClickHouse SQL -> per bucket the sessions, average duration, bounce rate.

Sessions are the Flink job's (the `sessions` table, folded by `sessions_merged`): the SDK's session id, or
for events with none the gap-cut session of their distinct id. A session is bucketed by its start (project
time zone, `date_to` inclusive); its duration is last event - first event, and a bounce is a session of one
event. Filters are on events (their properties, or their person's cohorts): a session counts when one of its events in the range matches them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from workers.projects import Project
from workers.query import sql
from workers.query.sql import Filter, Name, Rows, Run
from workers.query.tables import Table, cell

MAX_DAYS = 366 * 2


@dataclass(frozen=True)
class SessionsQuery:
    interval: str
    date_from: date
    date_to: date
    filters: tuple[Filter, ...]


def parse(body: object) -> SessionsQuery:
    body = sql.json_object(body)
    interval = sql.interval_field(body)
    date_from, date_to = sql.date_range(body, MAX_DAYS, interval)
    return SessionsQuery(
        interval, date_from, date_to, sql.filters(body.get("filters"), "sessions", person=False)
    )


def names(q: SessionsQuery) -> list[Name]:
    return sql.filter_names(q.filters, "sessions")


async def answer(run: Run, q: SessionsQuery, project: Project) -> dict[str, Any]:
    return result(q, await run(*sql_for(q, project.id, project.timezone)), project.timezone)


def sql_for(q: SessionsQuery, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    start, end = sql.bounds(q.date_from, q.date_to, ZoneInfo(timezone))
    params: dict[str, Any] = {"project_id": project_id, "tz": timezone, "start": start, "end": end}
    matching = "1"
    if q.filters:
        events = sql.session_events(sql.filter_sql(q.filters, "f", params))
        matching = f"session_id IN (SELECT session_id FROM ({events}))"
    return sql.statement("sessions.sql", {"bucket": sql.INTERVALS[q.interval], "sessions": matching}), params


def result(q: SessionsQuery, rows: Rows, timezone: str) -> dict[str, Any]:
    tz = ZoneInfo(timezone)
    labels = [sql.label(s, q.interval) for s in sql.bucket_starts(q.interval, q.date_from, q.date_to, tz)]
    by_label = {sql.label(sql.bucket_start(r["bucket"], tz), q.interval): r for r in rows}
    out: dict[str, Any] = {"labels": labels, "sessions": [], "avg_duration_seconds": [], "bounce_rate": []}
    for lab in labels:
        row = by_label.get(lab)
        out["sessions"].append(int(row["sessions"]) if row else 0)
        out["avg_duration_seconds"].append(round(float(row["avg_duration"]), 6) if row else 0)
        out["bounce_rate"].append(round(float(row["bounce_rate"]), 6) if row else 0)
    return out


SESSION_MEASURES = ("sessions", "avg_duration_seconds", "bounce_rate")


def table(answer: dict[str, Any]) -> Table:
    return ["Measure", *map(cell, answer["labels"])], [[m, *map(cell, answer[m])] for m in SESSION_MEASURES]

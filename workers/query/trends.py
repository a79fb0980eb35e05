"""Trends (Amplitude's event segmentation): a request -> bound ClickHouse SQL -> series.

`parse` validates a request body into a `TrendsQuery` (a 400 names what is wrong), `sql_for` writes the
statement from `sql/clickhouse/queries/trends.sql` with every value bound as a parameter, and `answer`
runs it per series (plain totals and uniques from the Flink job's rollups where they cover a bucket:
trends_rollups) and shapes the rows. Persons are counted after merges (sql.after_merges). Each event
counts once (`events FINAL`: one row per uuid). Buckets are in the project's time zone; `date_to` is
inclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from workers.projects import Project
from workers.query import sql, trends_rollups
from workers.query.sql import Breakdown, CohortBreakdown, Name, Rows, Run, Series
from workers.query.tables import Table, series_table

MEASURES = ("uniques", "totals", "active_percent", "average", "frequency", "sum", "avg", "distribution")
FREQUENCY_LABELS = [str(n) for n in range(1, 10)] + ["10+"]
MAX_DAYS = 366 * 2
MAX_EVENTS = 10


@dataclass(frozen=True)
class TrendsQuery:
    series: tuple[Series, ...]
    measure: str
    interval: str
    date_from: date
    date_to: date
    property: str | None = None
    breakdown: Breakdown | CohortBreakdown | None = None


def parse(body: object) -> TrendsQuery:
    body = sql.json_object(body)
    series = sql.series_list(body, "events", MAX_EVENTS)
    measure = body.get("measure", "uniques")
    if measure not in MEASURES:
        raise sql.BadRequest(f"measure: {measure!r} is not one of {', '.join(MEASURES)}")
    prop = body.get("property")
    if measure in ("sum", "avg", "distribution") and (not isinstance(prop, str) or not prop):
        raise sql.BadRequest(f"property: required for measure {measure!r}")
    interval = sql.interval_field(body)
    date_from, date_to = sql.date_range(body, MAX_DAYS, interval)
    return TrendsQuery(
        series, measure, interval, date_from, date_to, prop if isinstance(prop, str) else None,
        sql.breakdown_or_cohorts(body.get("breakdown")),
    )  # fmt: skip


def names(q: TrendsQuery) -> list[Name]:
    names = sql.series_names(q.series, "events")
    if isinstance(q.breakdown, Breakdown):
        names.append((f"{q.breakdown.type}_property", "breakdown.property", q.breakdown.property))
    if q.property is not None and q.measure in ("sum", "avg", "distribution"):
        names.append(("event_property", "property", q.property))
    return names


async def answer(run: Run, q: TrendsQuery, project: Project) -> dict[str, Any]:
    """Per series (and breakdown value) its labels and values."""
    active = None
    if q.measure == "active_percent":
        active = await run(*sql_for(q, None, project.id, project.timezone))

    async def raw(part: TrendsQuery, series: Series) -> Rows:
        return await run(*sql_for(part, series, project.id, project.timezone))

    covers = None
    if any(trends_rollups.applies(q, series) for series in q.series):
        covers = await trends_rollups.coverage(run, project.id)
    result = []
    for series in q.series:
        if trends_rollups.applies(q, series):
            rows = await trends_rollups.totals(run, raw, q, series, project.id, project.timezone, covers)
        else:
            rows = await raw(q, series)
        if q.measure in ("frequency", "distribution"):
            shape = frequency_values if q.measure == "frequency" else distribution_values
            labels, values = shape(rows)
            result.append(
                {"event": series.event, "breakdown_value": None, "labels": labels, "values": values}
            )
            continue
        for value in breakdown_values(q, rows):
            of_value = [r for r in rows if r["breakdown_value"] == value]
            labels, values = series_values(q, of_value, project.timezone, active)
            result.append({"event": series.event, "breakdown_value": value if q.breakdown else None,
                           "labels": labels, "values": values})  # fmt: skip
    return {"series": result}


def sql_for(
    q: TrendsQuery, series: Series | None, project_id: int, timezone: str
) -> tuple[str, dict[str, Any]]:
    """The statement for one series; `series=None` counts any event, unfiltered (active %'s denominator).

    `frequency` counts per person over the whole range (frequency.sql); `distribution` is the events per
    value of `property` over the whole range (a breakdown by it, in one bucket)."""
    tz = ZoneInfo(timezone)
    start, end = sql.bounds(q.date_from, q.date_to, tz)
    params: dict[str, Any] = {"project_id": project_id, "tz": timezone, "start": start, "end": end}
    event, filters, breakdown = "1", "1", "''"
    if series is not None:
        params["event"] = series.event
        event, filters = "event = {event:String}", sql.filter_sql(series.filters, "f", params)
        if isinstance(q.breakdown, CohortBreakdown):
            breakdown = sql.cohort_breakdown_sql(q.breakdown, params)
        elif q.breakdown is not None:
            params["breakdown"] = q.breakdown.property
            breakdown = sql.breakdown_sql(q.breakdown)
        if q.measure == "distribution":
            params["property"] = q.property
            breakdown = "JSONExtractRaw(properties, {property:String})"
    value, has_value, table = "0", "0", "events"
    if q.measure in ("sum", "avg"):
        params["property"] = q.property
        value, has_value = (
            "JSONExtractFloat(properties, {property:String})",
            "JSONHas(properties, {property:String})",
        )
        table = "events FINAL"  # one row per uuid before adding values up
    bucket = "toDate('1970-01-01')" if q.measure == "distribution" else sql.INTERVALS[q.interval]
    uses_persons = q.breakdown is not None and q.breakdown.type == "person"
    if series is not None:
        uses_persons = uses_persons or any(f.type == "person" for f in series.filters)
    fragments = {
        "series_events": sql.fragment("series_events.sql"), "bucket": bucket, "event": event,
        "filters": filters, "breakdown": breakdown, "value": value, "has_value": has_value,
        "events_table": table, "hot": sql.HOT_COLUMNS, **sql.after_merges(),
        "person_properties": sql.fragment("persons_join.sql") if uses_persons else "",
    }  # fmt: skip
    return sql.statement("frequency.sql" if q.measure == "frequency" else "trends.sql", fragments), params


def series_values(
    q: TrendsQuery, rows: Rows, timezone: str, active: Rows | None = None
) -> tuple[list[str], list[float]]:
    """Labels and values of one series (rows of one breakdown value); `active` = rows of any event."""
    tz = ZoneInfo(timezone)
    labels = [sql.label(s, q.interval) for s in sql.bucket_starts(q.interval, q.date_from, q.date_to, tz)]

    def by_label(of: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {sql.label(sql.bucket_start(r["bucket"], tz), q.interval): r for r in of}

    mine, everyone = by_label(rows), by_label(active or [])
    values: list[float] = []
    for lab in labels:
        row = mine.get(lab)
        if row is None:
            values.append(0)
        elif q.measure == "uniques":
            values.append(row["persons"])
        elif q.measure == "totals":
            values.append(row["events"])
        elif q.measure == "average":
            values.append(round(row["events"] / row["persons"], 6) if row["persons"] else 0)
        elif q.measure == "active_percent":
            total = everyone.get(lab, {}).get("persons", 0)
            values.append(round(100 * row["persons"] / total, 6) if total else 0)
        elif q.measure == "sum":
            values.append(row["property_sum"] or 0)
        else:
            values.append(round(row["property_avg"], 6) if row["property_avg"] is not None else 0)
    return labels, values


def breakdown_values(q: TrendsQuery, rows: Rows) -> list[Any]:
    """The series' breakdown values: `""` alone without a breakdown, the cohorts in request order, or the
    property values with the most events over the range, at most `breakdown.limit`."""
    if q.breakdown is None:
        return [""]
    if isinstance(q.breakdown, CohortBreakdown):
        return list(q.breakdown.cohorts)
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["breakdown_value"]] = totals.get(r["breakdown_value"], 0) + int(r["events"])
    return sorted(totals, key=lambda v: (-totals[v], v))[: q.breakdown.limit]


def frequency_values(rows: Rows) -> tuple[list[str], list[float]]:
    counts = {int(r["times"]): int(r["persons"]) for r in rows}
    return FREQUENCY_LABELS, [counts.get(n, 0) for n in range(1, 11)]


def distribution_values(rows: Rows, limit: int = 100) -> tuple[list[str], list[float]]:
    """Events per value of the property (its JSON text; unset left out), most common first."""
    counted = sorted(
        ((r["breakdown_value"], int(r["events"])) for r in rows if r["breakdown_value"] != ""),
        key=lambda item: (-item[1], item[0]),
    )[:limit]
    return [v for v, _ in counted], [n for _, n in counted]


def table(answer: dict[str, Any]) -> Table:
    return series_table(answer)

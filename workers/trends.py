"""Trends (Amplitude's event segmentation): a request -> bound ClickHouse SQL -> series.

Pure: `parse_request` validates a request body into a `TrendsQuery` (a 400 names what is wrong), `sql_for`
writes the statement from `sql/clickhouse/queries/trends.sql` with every value bound as a parameter, and
`series` shapes the rows. Persons are counted after merges: an event's distinct id maps to its person
through `person_distinct_ids` (highest version), a distinct id with no row there (a personless event)
keeps the event's own person id. Each event counts once (`events FINAL`: one row per uuid). Buckets are
in the project's time zone; `date_to` is inclusive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

QUERIES = Path(__file__).resolve().parent.parent / "sql" / "clickhouse" / "queries"
MEASURES = ("uniques", "totals", "active_percent", "average", "frequency", "sum", "avg", "distribution")
FREQUENCY_LABELS = [str(n) for n in range(1, 10)] + ["10+"]
INTERVALS = {
    "hour": "toUnixTimestamp(toStartOfHour(timestamp, {tz:String}))",  # an instant: 01:00 twice in autumn
    "day": "toStartOfDay(timestamp, {tz:String})",
    "week": "toStartOfWeek(timestamp, 1, {tz:String})",  # weeks start on Monday (ISO)
    "month": "toStartOfMonth(timestamp, {tz:String})",
}
# Hot event properties and the materialized columns that hold them (sql/clickhouse/00[34]_*.sql): the
# column is JSONExtractString(properties, name), computed once at insert.
HOT_PROPERTIES = {
    "$session_id": "session_id", "$browser": "mat_browser", "$os": "mat_os", "$device_type": "mat_device_type",
    "$current_url": "mat_current_url", "$pathname": "mat_pathname", "$host": "mat_host",
    "$referring_domain": "mat_referring_domain", "$geoip_country_code": "mat_country_code",
}  # fmt: skip
HOT_COLUMNS = ", ".join(HOT_PROPERTIES.values())
OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "contains", "in", "is_set", "is_not_set")
MAX_DAYS = 366 * 2
MAX_EVENTS = 10


@cache
def fragment(name: str) -> str:
    """A file of sql/clickhouse/queries/ without its comment lines, read once per process."""
    lines = (QUERIES / name).read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("--"))


def statement(name: str, fragments: Mapping[str, str]) -> str:
    """A query file with its /*mark*/ fragments filled in, in order (a fragment may carry later marks)."""
    text = fragment(name)
    for mark, value in fragments.items():
        text = text.replace(f"/*{mark}*/", value)
    return text


def session_events(filters: str) -> str:
    """session_events.sql: the range's events passing `filters` (SQL), each with its session id."""
    return statement("session_events.sql", {"sdk_key": fragment("sdk_session_key.sql"), "filters": filters})


class BadRequest(ValueError):
    """A request the API refuses with 400; the message names the field."""


@dataclass(frozen=True)
class Filter:
    property: str
    op: str
    value: Any = None
    type: str = "event"  # event: the event's properties; person: the person's current properties


@dataclass(frozen=True)
class Breakdown:
    type: str
    property: str
    limit: int


@dataclass(frozen=True)
class Series:
    event: str
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class TrendsQuery:
    series: tuple[Series, ...]
    measure: str
    interval: str
    date_from: date
    date_to: date
    property: str | None = None
    breakdown: Breakdown | None = None


def _date(body: dict[str, Any], name: str) -> date:
    value = body.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"{name}: required, as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name}: {value!r} is not a YYYY-MM-DD date") from None


def _filters(raw: object, where: str) -> tuple[Filter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadRequest(f"{where}.filters: must be a list")
    filters = []
    for n, f in enumerate(raw):
        if not isinstance(f, dict):
            raise BadRequest(f"{where}.filters[{n}]: must be an object")
        prop, op = f.get("property"), f.get("op")
        if not isinstance(prop, str) or not prop:
            raise BadRequest(f"{where}.filters[{n}].property: required")
        if op not in OPS:
            raise BadRequest(f"{where}.filters[{n}].op: {op!r} is not one of {', '.join(OPS)}")
        kind = f.get("type", "event")
        if kind not in ("event", "person"):
            raise BadRequest(f"{where}.filters[{n}].type: {kind!r} is not one of event, person")
        value = f.get("value")
        if op == "in" and not (
            isinstance(value, list) and all(isinstance(v, str | int | float) for v in value)
        ):
            raise BadRequest(f"{where}.filters[{n}].value: 'in' needs a list of strings or numbers")
        if op in ("gt", "gte", "lt", "lte") and not (
            isinstance(value, int | float) and not isinstance(value, bool)
        ):
            raise BadRequest(f"{where}.filters[{n}].value: {op!r} needs a number")
        if op in ("eq", "neq", "contains") and not isinstance(value, str | int | float | bool):
            raise BadRequest(f"{where}.filters[{n}].value: {op!r} needs a string, number or boolean")
        filters.append(Filter(prop, op, value, kind))
    return tuple(filters)


def event_filters(filters: tuple[Filter, ...], where: str) -> tuple[Filter, ...]:
    """For endpoints whose SQL has no person properties: a person filter is a 400, not a SQL error."""
    for n, f in enumerate(filters):
        if f.type != "event":
            raise BadRequest(f"{where}.filters[{n}].type: only event properties can filter here")
    return filters


def parse_request(body: object) -> TrendsQuery:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise BadRequest("events: required, a non-empty list of {event, filters?}")
    if len(events) > MAX_EVENTS:
        raise BadRequest(f"events: at most {MAX_EVENTS}")
    series = []
    for n, item in enumerate(events):
        if not isinstance(item, dict) or not isinstance(item.get("event"), str) or not item["event"]:
            raise BadRequest(f"events[{n}].event: required, a string")
        series.append(Series(item["event"], _filters(item.get("filters"), f"events[{n}]")))
    measure = body.get("measure", "uniques")
    if measure not in MEASURES:
        raise BadRequest(f"measure: {measure!r} is not one of {', '.join(MEASURES)}")
    prop = body.get("property")
    if measure in ("sum", "avg", "distribution") and (not isinstance(prop, str) or not prop):
        raise BadRequest(f"property: required for measure {measure!r}")
    interval = body.get("interval", "day")
    if interval not in INTERVALS:
        raise BadRequest(f"interval: {interval!r} is not one of {', '.join(INTERVALS)}")
    date_from, date_to = _date(body, "date_from"), _date(body, "date_to")
    if date_to < date_from:
        raise BadRequest("date_to: before date_from")
    if (date_to - date_from).days > MAX_DAYS:
        raise BadRequest(f"date_from..date_to: at most {MAX_DAYS} days")
    if interval == "hour" and (date_to - date_from).days > 31:
        raise BadRequest("interval: 'hour' covers at most 31 days")
    return TrendsQuery(
        tuple(series), measure, interval, date_from, date_to, prop if isinstance(prop, str) else None,
        _breakdown(body.get("breakdown")),
    )  # fmt: skip


def _breakdown(raw: object) -> Breakdown | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRequest("breakdown: must be an object {type, property, limit}")
    kind, prop, limit = raw.get("type", "event"), raw.get("property"), raw.get("limit", 10)
    if kind not in ("event", "person"):
        raise BadRequest(f"breakdown.type: {kind!r} is not one of event, person")
    if not isinstance(prop, str) or not prop:
        raise BadRequest("breakdown.property: required")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
        raise BadRequest("breakdown.limit: an integer from 1 to 100")
    return Breakdown(kind, prop, limit)


def bucket_starts(q: TrendsQuery, tz: ZoneInfo) -> list[datetime]:
    """Every bucket's start, local time, from date_from to date_to inclusive."""
    starts: list[datetime] = []
    if q.interval == "hour":
        moment = datetime.combine(q.date_from, time(), tz)
        end = datetime.combine(q.date_to + timedelta(days=1), time(), tz)
        while moment < end:
            starts.append(moment)
            # step in UTC so a DST change gives 23 or 25 hourly buckets, as ClickHouse's do
            moment = (moment.astimezone(ZoneInfo("UTC")) + timedelta(hours=1)).astimezone(tz)
        return starts
    day = q.date_from
    if q.interval == "week":
        day -= timedelta(days=day.weekday())
    if q.interval == "month":
        day = day.replace(day=1)
    while day <= q.date_to:
        starts.append(datetime.combine(day, time(), tz))
        if q.interval == "day":
            day += timedelta(days=1)
        elif q.interval == "week":
            day += timedelta(days=7)
        else:
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return starts


def label(start: datetime, interval: str) -> str:
    """Hours as local time with the UTC offset (unambiguous across a DST change), else the local date."""
    return start.isoformat(timespec="minutes") if interval == "hour" else start.date().isoformat()


def bucket_start(value: object, tz: ZoneInfo) -> datetime:
    """A bucket as ClickHouse returns it: epoch seconds (hours) or a local date-time string."""
    if isinstance(value, int):
        return datetime.fromtimestamp(value, tz)
    return datetime.fromisoformat(str(value)).replace(tzinfo=tz)


def _filter_sql(filters: tuple[Filter, ...], prefix: str, params: dict[str, Any]) -> str:
    """Each filter as a condition on the row's `properties` (or `person_properties`): `eq`, `neq` and `in`
    compare a string property to the string value and any other to its JSON text, and need it set;
    gt/gte/lt/lte compare numbers (a property holding anything else never matches); `contains` is a
    case-insensitive substring of a string property. A hot event property reads its materialized column
    (JSONExtractString: a string's value, a number's or boolean's text) and parses the JSON only where
    that column cannot decide."""
    clauses = []
    for n, f in enumerate(filters):
        key = f"{prefix}_{n}"
        column = "person_properties" if f.type == "person" else "properties"
        params[f"{key}_name"] = f.property
        name = f"{{{key}_name:String}}"
        # the properties JSON is parsed once per row (raw: the value's JSON text, '' when the key is
        # missing); the rest reads that short text
        raw = f"JSONExtractRaw({column}, {name})"
        has, is_string, text = f"({raw} != '')", f"startsWith({raw}, '\"')", f"JSONExtractString({raw})"
        hot = HOT_PROPERTIES.get(f.property) if f.type == "event" else None
        if f.op in ("is_set", "is_not_set"):
            is_set = f"({hot} != '' OR {has})" if hot else has
            clauses.append(is_set if f.op == "is_set" else f"NOT {is_set}")
        elif f.op in ("gt", "gte", "lt", "lte"):
            params[key] = float(f.value)
            sign = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[f.op]
            number, is_number = (
                f"JSONExtractFloat({raw})",
                f"JSONType({raw}) IN ('Int64', 'UInt64', 'Double')",
            )
            clauses.append(f"({is_number} AND {number} {sign} {{{key}:Float64}})")
        elif f.op == "contains":
            params[key] = str(f.value)
            needle = f"{{{key}:String}}"
            generic = f"({is_string} AND positionCaseInsensitiveUTF8({text}, {needle}) > 0)"
            # the column holds numbers' text too, so a match is confirmed as a string in the JSON
            fast = f"(positionCaseInsensitiveUTF8({hot}, {needle}) > 0 AND {is_string})"
            clauses.append(fast if hot else generic)
        else:  # eq, neq, in
            kind = "Array(String)" if f.op == "in" else "String"
            params[key] = [_as_text(v) for v in f.value] if f.op == "in" else _as_text(f.value)
            compare = "IN" if f.op == "in" else "="
            value = f"{{{key}:{kind}}}"
            equal = f"({has} AND if({is_string}, {text} {compare} {value}, {raw} {compare} {value}))"
            generic = f"({has} AND NOT {equal})" if f.op == "neq" else equal
            fast = f"{hot} != {value}" if f.op == "neq" else f"{hot} {compare} {value}"
            clauses.append(f"if({hot} != '', {fast}, {generic})" if hot else generic)
    return " AND ".join(clauses) if clauses else "1"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def sql_for(
    q: TrendsQuery, series: Series | None, project_id: int, timezone: str
) -> tuple[str, dict[str, Any]]:
    """The statement for one series; `series=None` counts any event, unfiltered (active %'s denominator).

    `frequency` counts per person over the whole range (frequency.sql); `distribution` is the events per
    value of `property` over the whole range (a breakdown by it, in one bucket)."""
    tz = ZoneInfo(timezone)
    start = datetime.combine(q.date_from, time(), tz)
    end = datetime.combine(q.date_to + timedelta(days=1), time(), tz)
    params: dict[str, Any] = {"project_id": project_id, "tz": timezone, "start": start, "end": end}
    event, filters, breakdown = "1", "1", "''"
    if series is not None:
        params["event"] = series.event
        event, filters = "event = {event:String}", _filter_sql(series.filters, "f", params)
        if q.breakdown is not None:
            params["breakdown"] = q.breakdown.property
            breakdown = breakdown_sql(q.breakdown)
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
    bucket = "toDate('1970-01-01')" if q.measure == "distribution" else INTERVALS[q.interval]
    uses_persons = q.breakdown is not None and q.breakdown.type == "person"
    if series is not None:
        uses_persons = uses_persons or any(f.type == "person" for f in series.filters)
    fragments = {
        "series_events": fragment("series_events.sql"), "bucket": bucket, "event": event, "filters": filters, "breakdown": breakdown, "value": value,
        "has_value": has_value, "events_table": table, "hot": HOT_COLUMNS,
        "persons": fragment("person_overrides.sql"),
        "person_properties": fragment("persons_join.sql") if uses_persons else "",
    }  # fmt: skip
    return statement("frequency.sql" if q.measure == "frequency" else "trends.sql", fragments), params


def breakdown_sql(breakdown: Breakdown) -> str:
    """The breakdown value of a row: a string's value, a number's or boolean's text, '' otherwise."""
    if breakdown.type == "event" and breakdown.property in HOT_PROPERTIES:
        return HOT_PROPERTIES[breakdown.property]
    column = "person_properties" if breakdown.type == "person" else "properties"
    return f"JSONExtractString({column}, {{breakdown:String}})"


def series_values(
    q: TrendsQuery, rows: list[dict[str, Any]], timezone: str, active: list[dict[str, Any]] | None = None
) -> tuple[list[str], list[float]]:
    """Labels and values of one series (rows of one breakdown value); `active` = rows of any event."""
    tz = ZoneInfo(timezone)
    starts = bucket_starts(q, tz)
    labels = [label(s, q.interval) for s in starts]

    def by_label(of: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {label(bucket_start(r["bucket"], tz), q.interval): r for r in of}

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


def top_breakdown_values(q: TrendsQuery, rows: list[dict[str, Any]]) -> list[str]:
    """The breakdown values with the most events over the range, at most `breakdown.limit`."""
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["breakdown_value"]] = totals.get(r["breakdown_value"], 0) + int(r["events"])
    ranked = sorted(totals, key=lambda v: (-totals[v], v))
    return ranked[: q.breakdown.limit] if q.breakdown else ranked


def frequency_values(rows: list[dict[str, Any]]) -> tuple[list[str], list[float]]:
    counts = {int(r["times"]): int(r["persons"]) for r in rows}
    return FREQUENCY_LABELS, [counts.get(n, 0) for n in range(1, 11)]


def distribution_values(rows: list[dict[str, Any]], limit: int = 100) -> tuple[list[str], list[float]]:
    """Events per value of the property (its JSON text; unset left out), most common first."""
    counted = sorted(
        ((r["breakdown_value"], int(r["events"])) for r in rows if r["breakdown_value"] != ""),
        key=lambda item: (-item[1], item[0]),
    )[:limit]
    return [v for v, _ in counted], [n for _, n in counted]

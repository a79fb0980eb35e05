"""What the insights share: request fields (dates, filters, breakdowns) parsed into values or a 400 that
names the field, those values as bound ClickHouse SQL, buckets and their labels, and the statements of
sql/clickhouse/queries/ with their /*mark*/ fragments filled in.

Persons are counted after merges: an event's distinct id maps to its person through `person_distinct_ids`
(highest version), a distinct id with no row there keeps the event's own person id (`after_merges`:
person.sql and person_overrides.sql).

Cohorts: a cohort filter or breakdown names cohort ids; the API resolves them to their current versions in
Postgres (`cohort_references`, `with_cohort_versions`) before the SQL binds them (cohort_member.sql: a
condition on any events row, so every statement whose filters are filter_sql gets cohort filters, and
`cohort_breakdown_sql` for breakdowns).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SQL = Path(__file__).resolve().parent.parent.parent / "sql"
QUERIES = SQL / "clickhouse" / "queries"
POSTGRES = SQL / "postgres" / "web"
INTERVALS = {
    "hour": "toUnixTimestamp(toStartOfHour(timestamp, {tz:String}))",  # an instant: 01:00 twice in autumn
    "day": "toStartOfDay(timestamp, {tz:String})",
    "week": "toStartOfWeek(timestamp, 1, {tz:String})",  # weeks start on Monday (ISO)
    "month": "toStartOfMonth(timestamp, {tz:String})",
}
MAX_HOUR_DAYS = 31
# Hot event properties and the materialized columns that hold them (sql/clickhouse/00[34]_*.sql): the
# column is JSONExtractString(properties, name), computed once at insert.
HOT_PROPERTIES = {
    "$session_id": "session_id", "$browser": "mat_browser", "$os": "mat_os", "$device_type": "mat_device_type",
    "$current_url": "mat_current_url", "$pathname": "mat_pathname", "$host": "mat_host",
    "$referring_domain": "mat_referring_domain", "$geoip_country_code": "mat_country_code",
}  # fmt: skip
HOT_COLUMNS = ", ".join(HOT_PROPERTIES.values())
OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "contains", "in", "is_set", "is_not_set")
COHORT_OPS = ("in", "not_in")
MAX_BREAKDOWN_COHORTS = 20
MAX_ID = 2**63 - 1

Rows = list[dict[str, Any]]
# A statement run under the endpoint's limits: (statement, params) -> rows
Run = Callable[[str, dict[str, Any]], Awaitable[Rows]]
# An event or property name a request refers to: (kind, the request field, the name);
# kind: event | event_property | person_property
Name = tuple[str, str, str]


class BadRequest(ValueError):
    """A request the API refuses with 400; the message names the field."""


@dataclass(frozen=True)
class Filter:
    property: str
    op: str
    value: Any = None
    # event: the event's properties; person: the person's current properties; cohort: the event's person
    # after merges is (op in) or is not (op not_in) a member of the cohort `value`
    type: str = "event"
    field: str = ""  # where the filter is in the request (a cohort's is named when it is not the project's)
    version: int = 0  # a cohort filter's: the cohort's current version (with_cohort_versions)


@dataclass(frozen=True)
class Breakdown:
    type: str
    property: str
    limit: int


@dataclass(frozen=True)
class CohortBreakdown:
    """One series per cohort, in request order, each counting only the cohort's members."""

    cohorts: tuple[int, ...]
    versions: tuple[int, ...] = ()  # each cohort's current version (with_cohort_versions)
    type: str = "cohort"


@dataclass(frozen=True)
class Series:
    """An event and its filters: a trends series, a funnel step."""

    event: str
    filters: tuple[Filter, ...] = ()


# statements


@cache
def fragment(name: str) -> str:
    """A file of sql/clickhouse/queries/ without its comment lines, read once per process."""
    lines = (QUERIES / name).read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("--"))


@cache
def postgres(name: str) -> str:
    """A statement of sql/postgres/web/, read once per process."""
    return (POSTGRES / name).read_text()


def statement(name: str, fragments: Mapping[str, str]) -> str:
    """A query file with its /*mark*/ fragments filled in, in order (a fragment may carry later marks)."""
    text = fragment(name)
    for mark, value in fragments.items():
        text = text.replace(f"/*{mark}*/", value)
    return text


def after_merges() -> dict[str, str]:
    """The fragments of an event's person after merges: `persons` joins the moved distinct ids (as `p`) to
    the events (as `e`), `person` is then the event's person."""
    return {"person": fragment("person.sql"), "persons": fragment("person_overrides.sql")}


def session_events(filters: str) -> str:
    """session_events.sql: the range's events passing `filters` (SQL), each with its session id."""
    return statement("session_events.sql", {"sdk_key": fragment("sdk_session_key.sql"), "filters": filters})


# request fields


def json_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _date(body: dict[str, Any], name: str) -> date:
    value = body.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"{name}: required, as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name}: {value!r} is not a YYYY-MM-DD date") from None


def date_range(body: dict[str, Any], max_days: int, interval: str | None = None) -> tuple[date, date]:
    """`date_from` and `date_to` (inclusive), at most `max_days` apart (MAX_HOUR_DAYS by the hour)."""
    date_from, date_to = _date(body, "date_from"), _date(body, "date_to")
    if date_to < date_from:
        raise BadRequest("date_to: before date_from")
    if (date_to - date_from).days > max_days:
        raise BadRequest(f"date_from..date_to: at most {max_days} days")
    if interval == "hour" and (date_to - date_from).days > MAX_HOUR_DAYS:
        raise BadRequest(f"interval: 'hour' covers at most {MAX_HOUR_DAYS} days")
    return date_from, date_to


def interval_field(body: dict[str, Any]) -> str:
    interval = body.get("interval", "day")
    if interval not in INTERVALS:
        raise BadRequest(f"interval: {interval!r} is not one of {', '.join(INTERVALS)}")
    return str(interval)


def filters(raw: object, where: str, *, person: bool = True) -> tuple[Filter, ...]:
    """The filters of `where` (a list of {property, op, value?, type?}); `person=False` for endpoints whose
    SQL has no person properties: a person filter is a 400 there, not a SQL error."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadRequest(f"{where}.filters: must be a list")
    parsed = [one_filter(f, f"{where}.filters[{n}]") for n, f in enumerate(raw)]
    if not person:
        for n, f in enumerate(parsed):
            if f.type == "person":
                raise BadRequest(f"{where}.filters[{n}].type: only event properties can filter here")
    return tuple(parsed)


def one_filter(f: object, field: str, kinds: tuple[str, ...] = ("event", "person", "cohort")) -> Filter:
    """One filter at `field` of the request, of one of `kinds`."""
    if not isinstance(f, dict):
        raise BadRequest(f"{field}: must be an object")
    kind = f.get("type", "event")
    if kind not in kinds:
        raise BadRequest(f"{field}.type: {kind!r} is not one of {', '.join(kinds)}")
    if kind == "cohort":
        return _cohort_filter(f, field)
    prop, op = f.get("property"), f.get("op")
    if not isinstance(prop, str) or not prop:
        raise BadRequest(f"{field}.property: required")
    if op not in OPS:
        raise BadRequest(f"{field}.op: {op!r} is not one of {', '.join(OPS)}")
    value = f.get("value")
    if op == "in" and not (isinstance(value, list) and all(isinstance(v, str | int | float) for v in value)):
        raise BadRequest(f"{field}.value: 'in' needs a list of strings or numbers")
    if op in ("gt", "gte", "lt", "lte") and not (
        isinstance(value, int | float) and not isinstance(value, bool)
    ):
        raise BadRequest(f"{field}.value: {op!r} needs a number")
    if op in ("eq", "neq", "contains") and not isinstance(value, str | int | float | bool):
        raise BadRequest(f"{field}.value: {op!r} needs a string, number or boolean")
    return Filter(prop, op, value, kind, field)


def _cohort_filter(f: dict[str, Any], field: str) -> Filter:
    op, value = f.get("op", "in"), f.get("value")
    if op not in COHORT_OPS:
        raise BadRequest(f"{field}.op: {op!r} is not one of {', '.join(COHORT_OPS)}")
    if not is_id(value):
        raise BadRequest(f"{field}.value: a cohort id (a positive integer)")
    return Filter("", op, value, "cohort", f"{field}.value")


def is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def series_list(body: dict[str, Any], field: str, max_items: int) -> tuple[Series, ...]:
    """`field`: a list of 1..max_items {event, filters?} (trends series, stickiness)."""
    items = body.get(field)
    if not isinstance(items, list) or not items:
        raise BadRequest(f"{field}: required, a non-empty list of {{event, filters?}}")
    if len(items) > max_items:
        raise BadRequest(f"{field}: at most {max_items}")
    series = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("event"), str) or not item["event"]:
            raise BadRequest(f"{field}[{n}].event: required, a string")
        series.append(Series(item["event"], filters(item.get("filters"), f"{field}[{n}]")))
    return tuple(series)


def breakdown(raw: object) -> Breakdown | None:
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


def breakdown_or_cohorts(raw: object) -> Breakdown | CohortBreakdown | None:
    """A breakdown by a property, or by cohorts: {"type": "cohort", "cohorts": [id, ...]}."""
    if not isinstance(raw, dict) or raw.get("type") != "cohort":
        return breakdown(raw)
    ids = raw.get("cohorts")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BREAKDOWN_COHORTS:
        raise BadRequest(f"breakdown.cohorts: a list of 1 to {MAX_BREAKDOWN_COHORTS} cohort ids")
    for n, cohort in enumerate(ids):
        if not is_id(cohort):
            raise BadRequest(f"breakdown.cohorts[{n}]: a cohort id (a positive integer)")
        if cohort in ids[:n]:
            raise BadRequest(f"breakdown.cohorts[{n}]: cohort {cohort} is listed twice")
    return CohortBreakdown(tuple(ids))


def filter_names(filters: tuple[Filter, ...], where: str) -> list[Name]:
    return [
        (f"{f.type}_property", f"{where}.filters[{n}].property", f.property)
        for n, f in enumerate(filters)
        if f.type != "cohort"
    ]


# cohorts in a query


def _each_cohort(value: Any, visit: Callable[[Any], Any]) -> Any:
    """`value` (a query: dataclasses and tuples of them) with `visit` applied to each cohort filter and
    cohort breakdown in it."""
    if (isinstance(value, Filter) and value.type == "cohort") or isinstance(value, CohortBreakdown):
        return visit(value)
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _each_cohort(getattr(value, f.name), visit) for f in fields(value)})
    if isinstance(value, tuple):
        return tuple(_each_cohort(v, visit) for v in value)
    return value


def cohort_references(q: Any) -> list[tuple[str, int]]:
    """(request field, cohort id) of each cohort a query uses."""
    found: list[tuple[str, int]] = []

    def collect(item: Any) -> Any:
        if isinstance(item, CohortBreakdown):
            found.extend((f"breakdown.cohorts[{n}]", c) for n, c in enumerate(item.cohorts))
        else:
            found.append((item.field, item.value))
        return item

    _each_cohort(q, collect)
    return found


def with_cohort_versions(q: Any, versions: Mapping[int, int]) -> Any:
    """The query with each cohort's current version, which its SQL binds."""

    def bind(item: Any) -> Any:
        if isinstance(item, CohortBreakdown):
            return replace(item, versions=tuple(versions[c] for c in item.cohorts))
        return replace(item, version=versions[item.value])

    return _each_cohort(q, bind)


def series_names(series: tuple[Series, ...], field: str) -> list[Name]:
    names: list[Name] = []
    for n, s in enumerate(series):
        names.append(("event", f"{field}[{n}].event", s.event))
        names += filter_names(s.filters, f"{field}[{n}]")
    return names


# values as SQL


def bounds(date_from: date, date_to: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the days date_from..date_to (inclusive) in the time zone."""
    return datetime.combine(date_from, time(), tz), datetime.combine(date_to + timedelta(days=1), time(), tz)


def filter_sql(
    filters: tuple[Filter, ...],
    prefix: str,
    params: dict[str, Any],
    person_properties: str = "person_properties",
    person: str | None = None,
) -> str:
    """Each filter as a condition on the row's `properties` (or the `person_properties` expression; a cohort
    filter on the row's person after merges, or on the `person` column when given): `eq`, `neq` and `in`
    compare a string property to the string value and any other to its JSON text, and need it set;
    gt/gte/lt/lte compare numbers (a property holding anything else never matches); `contains` is a
    case-insensitive substring of a string property. A hot event property reads its materialized column
    (JSONExtractString: a string's value, a number's or boolean's text) and parses the JSON only where
    that column cannot decide."""
    clauses = []
    for n, f in enumerate(filters):
        key = f"{prefix}_{n}"
        if f.type == "cohort":
            member = cohort_member_sql(key, f.value, f.version, params, person)
            clauses.append(member if f.op == "in" else f"NOT {member}")
            continue
        column = person_properties if f.type == "person" else "properties"
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


def cohort_member_sql(
    key: str, cohort: int, version: int, params: dict[str, Any], person: str | None = None
) -> str:
    """Whether a row's person after merges (a row with distinct_id and person_id: events), or the `person`
    column when given, is a member of the cohort's `version`, its values bound as `<key>_cohort` and
    `<key>_version`."""
    params[f"{key}_cohort"], params[f"{key}_version"] = cohort, version
    marks = {"cohort": f"{{{key}_cohort:UInt64}}", "version": f"{{{key}_version:UInt64}}"}
    if person is not None:
        return statement("cohort_has_person.sql", {**marks, "person": person})
    return statement("cohort_member.sql", marks)


def cohort_breakdown_sql(breakdown: CohortBreakdown, params: dict[str, Any]) -> str:
    """The cohorts (ids) a row's person after merges is a member of, one row each (arrayJoin: a person in
    several cohorts counts in each; in none, the row is left out). For a statement over events rows."""
    return f"arrayJoin({cohort_memberships_sql(breakdown, params)})"


def cohort_memberships_sql(
    breakdown: CohortBreakdown, params: dict[str, Any], person: str | None = None
) -> str:
    """The array of the breakdown's cohorts (ids, request order) a row's person after merges (or the
    `person` column) is a member of. For a statement over events rows."""
    members = [
        f"if({cohort_member_sql(f'cohort_breakdown_{n}', c, v, params, person)},"
        f" {{cohort_breakdown_{n}_cohort:UInt64}}, toUInt64(0))"
        for n, (c, v) in enumerate(zip(breakdown.cohorts, breakdown.versions, strict=True))
    ]
    return f"arrayFilter(c -> c != 0, [{', '.join(members)}])"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def breakdown_sql(breakdown: Breakdown) -> str:
    """The breakdown value of a row: a string's value, a number's or boolean's text, '' otherwise."""
    if breakdown.type == "event" and breakdown.property in HOT_PROPERTIES:
        return HOT_PROPERTIES[breakdown.property]
    column = "person_properties" if breakdown.type == "person" else "properties"
    return f"JSONExtractString({column}, {{breakdown:String}})"


# buckets


def bucket_starts(interval: str, date_from: date, date_to: date, tz: ZoneInfo) -> list[datetime]:
    """Every bucket's start, local time, from date_from to date_to inclusive."""
    starts: list[datetime] = []
    if interval == "hour":
        moment, end = bounds(date_from, date_to, tz)
        while moment < end:
            starts.append(moment)
            # step in UTC so a DST change gives 23 or 25 hourly buckets, as ClickHouse's do
            moment = (moment.astimezone(ZoneInfo("UTC")) + timedelta(hours=1)).astimezone(tz)
        return starts
    day = date_from
    if interval == "week":
        day -= timedelta(days=day.weekday())
    if interval == "month":
        day = day.replace(day=1)
    while day <= date_to:
        starts.append(datetime.combine(day, time(), tz))
        if interval == "day":
            day += timedelta(days=1)
        elif interval == "week":
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

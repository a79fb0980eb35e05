"""Funnels: a request -> bound ClickHouse SQL (arrays of each person's events) -> per-step counts,
conversions, medians and the time-to-convert histogram.

A person's events are in time order at second resolution; from each start (a step-1 event inside the date
range; unordered: any step's event) a chain takes the steps as the order mode says, within
`window_seconds` of the start (later steps may fall after `date_to`); a chain an exclusion hits does not
count, and a person's level is the deepest over their other starts. Persons are counted after merges and
each event once, as in trends. The README's funnels entry has the exact definitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from workers.projects import Project
from workers.query import sql
from workers.query.sql import Breakdown, CohortBreakdown, Filter, Name, Rows, Run, Series
from workers.query.tables import Table, cell

MAX_DAYS = 366 * 2
MAX_STEPS = 20
MAX_EXCLUSIONS = 5
MAX_BINS = 90
MAX_WINDOW_SECONDS = 90 * 86400
ORDERS = ("ordered", "strict", "unordered")
STEP_BITS = 0xFFFFF  # the low 20 bits of a packed event: its step masks (MAX_STEPS)


@dataclass(frozen=True)
class Exclusion:
    series: Series
    from_step: int  # 1-based, as the answer's steps
    to_step: int


@dataclass(frozen=True)
class Histogram:
    from_step: int
    to_step: int
    bins: int


@dataclass(frozen=True)
class FunnelQuery:
    steps: tuple[Series, ...]
    window_seconds: int
    date_from: date
    date_to: date
    breakdown: Breakdown | CohortBreakdown | None = None
    order: str = "ordered"
    exclusions: tuple[Exclusion, ...] = ()
    histogram: Histogram | None = None


def parse(body: object) -> FunnelQuery:
    body = sql.json_object(body)
    steps = body.get("steps")
    if not isinstance(steps, list) or len(steps) < 2:
        raise sql.BadRequest("steps: required, a list of at least 2 {event, filters?}")
    if len(steps) > MAX_STEPS:
        raise sql.BadRequest(f"steps: at most {MAX_STEPS}")
    parsed = tuple(_series(step, f"steps[{n}]") for n, step in enumerate(steps))
    window = body.get("window_seconds")
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= MAX_WINDOW_SECONDS:
        raise sql.BadRequest(f"window_seconds: required, an integer from 1 to {MAX_WINDOW_SECONDS}")
    date_from, date_to = sql.date_range(body, MAX_DAYS)
    order = body.get("order", "ordered")
    if order not in ORDERS:
        raise sql.BadRequest(f"order: {order!r} is not one of {', '.join(ORDERS)}")
    return FunnelQuery(
        parsed, window, date_from, date_to, sql.breakdown_or_cohorts(body.get("breakdown")), order,
        _exclusions(body.get("exclusions"), parsed), _histogram(body.get("histogram"), len(parsed)),
    )  # fmt: skip


def _series(raw: object, where: str) -> Series:
    if not isinstance(raw, dict) or not isinstance(raw.get("event"), str) or not raw["event"]:
        raise sql.BadRequest(f"{where}.event: required, a string")
    return Series(raw["event"], sql.filters(raw.get("filters"), where))


def _step_pair(raw: dict[str, Any], where: str, steps: int) -> tuple[int, int]:
    """`from_step` and `to_step`: 1-based, 1 <= from_step < to_step <= steps."""
    first, last = raw.get("from_step"), raw.get("to_step")
    for name, value in (("from_step", first), ("to_step", last)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= steps:
            raise sql.BadRequest(f"{where}.{name}: required, a step number from 1 to {steps}")
    assert isinstance(first, int) and isinstance(last, int)
    if first >= last:
        raise sql.BadRequest(f"{where}.to_step: must be after from_step")
    return first, last


def _exclusions(raw: object, steps: tuple[Series, ...]) -> tuple[Exclusion, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_EXCLUSIONS:
        raise sql.BadRequest(
            f"exclusions: a list of at most {MAX_EXCLUSIONS} {{event, filters?, from_step, to_step}}"
        )
    parsed = []
    for n, item in enumerate(raw):
        series = _series(item, f"exclusions[{n}]")
        first, last = _step_pair(item, f"exclusions[{n}]", len(steps))
        for step in (first, last):
            if steps[step - 1] == series:
                raise sql.BadRequest(f"exclusions[{n}].event: the same event and filters as step {step}")
        parsed.append(Exclusion(series, first, last))
    return tuple(parsed)


def _histogram(raw: object, steps: int) -> Histogram | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise sql.BadRequest("histogram: must be an object {from_step, to_step, bins?}")
    first, last = _step_pair(raw, "histogram", steps)
    bins = raw.get("bins", 10)
    if not isinstance(bins, int) or isinstance(bins, bool) or not 1 <= bins <= MAX_BINS:
        raise sql.BadRequest(f"histogram.bins: an integer from 1 to {MAX_BINS}")
    return Histogram(first, last, bins)


def names(q: FunnelQuery) -> list[Name]:
    names = sql.series_names(q.steps, "steps")
    names += sql.series_names(tuple(x.series for x in q.exclusions), "exclusions")
    if isinstance(q.breakdown, Breakdown):
        names.append((f"{q.breakdown.type}_property", "breakdown.property", q.breakdown.property))
    return names


async def answer(run: Run, q: FunnelQuery, project: Project) -> dict[str, Any]:
    return result(q, await run(*sql_for(q, project.id, project.timezone)))


def _event_side(filters: tuple[Filter, ...]) -> tuple[Filter, ...]:
    return tuple(f for f in filters if f.type == "event")


def _person_side(filters: tuple[Filter, ...]) -> tuple[Filter, ...]:
    """The filters that depend on the person only (person properties; cohorts): applied to each row's
    person once their events are grouped (see _person_conditions)."""
    return tuple(f for f in filters if f.type != "event")


def _masks(conditions: dict[int, str]) -> str:
    """The bit mask of the conditions (bit k: condition k holds)."""
    return " + ".join(f"toUInt32({c}) * {1 << k}" for k, c in conditions.items()) or "0"


def _step_events(q: FunnelQuery, params: dict[str, Any]) -> str:
    """The rows of each event name the steps and exclusions use, with their event-side masks, as one
    UNION ALL (strict order: with every other event of the range too, masks 0)."""
    steps = {n: f"({sql.filter_sql(_event_side(s.filters), f's{n}', params)})" for n, s in enumerate(q.steps)}
    exclusions = {
        j: f"({sql.filter_sql(_event_side(x.series.filters), f'x{j}', params)})"
        for j, x in enumerate(q.exclusions)
    }
    starts = {0} if q.order != "unordered" else set(range(len(q.steps)))
    uuid = "uuid" if _once_per_uuid(q) else "0"
    event_names = sorted({s.event for s in q.steps} | {x.series.event for x in q.exclusions})
    selects = []
    for i, event in enumerate(event_names):
        params[f"event_{i}"] = event
        breakdown = "''"
        if isinstance(q.breakdown, Breakdown) and q.breakdown.type == "event":
            if any(q.steps[n].event == event for n in starts):
                breakdown = sql.breakdown_sql(q.breakdown)
        fragments = {
            "uuid": uuid, "event": f"event = {{event_{i}:String}}",
            "masks": _masks({n: c for n, c in steps.items() if q.steps[n].event == event}),
            "exclusions": _masks({j: c for j, c in exclusions.items() if q.exclusions[j].series.event == event}),
            "row_breakdown": breakdown,
        }  # fmt: skip
        selects.append(sql.statement("step_events.sql", fragments))
    if q.order == "strict":
        params["event_names"] = event_names
        fragments = {"uuid": uuid, "event": "event NOT IN {event_names:Array(String)}", "masks": "0",
                     "exclusions": "0", "row_breakdown": "''"}  # fmt: skip
        selects.append(sql.statement("step_events.sql", fragments))
    return "\nUNION ALL\n".join(selects)


def _person_conditions(
    filters: list[tuple[Filter, ...]], prefix: str, params: dict[str, Any], per_person: dict[str, str]
) -> dict[int, str]:
    """Per step (or exclusion) k, whether the person (`g.person`, one row each) passes its person-side
    filters ("1" where it has none); {} when none has any. A property filter is computed once per person in
    the persons subquery (its column added to `per_person`, for person_computed_join.sql), with its value
    on empty properties for a person without a properties row; a cohort filter is one set lookup."""
    if not any(_person_side(f) for f in filters):
        return {}
    passing = {}
    for k, step_filters in enumerate(filters):
        key = f"{prefix}{k}"
        properties = tuple(f for f in step_filters if f.type == "person")
        in_cohorts = tuple(f for f in step_filters if f.type == "cohort")
        conditions = []
        if properties:
            per_person[f"person_pass_{key}"] = sql.filter_sql(properties, key, params)
            on_empty = sql.filter_sql(properties, key, params, person_properties="''")
            conditions.append(f"if(person_found, person_pass_{key}, {on_empty})")
        if in_cohorts:
            conditions.append(sql.filter_sql(in_cohorts, f"{key}c", params, person="person"))
        passing[k] = f"({' AND '.join(conditions)})" if conditions else "1"
    return passing


def _person_join(columns: str, person: str) -> str:
    """person_computed_join.sql: `columns` of each person's current properties, joined by `person`."""
    return sql.statement("person_computed_join.sql", {"columns": columns, "person": person})


def _person_events(q: FunnelQuery, step_passing: dict[int, str]) -> str:
    """The person's events with the bits of the steps whose person-side filters they fail cleared; an event
    left with none is dropped, but in strict order it stays (another event between two steps)."""
    if not step_passing:
        return "person_events"
    cleared = f"arrayMap(x -> bitAnd(x, bitOr(bitNot(toUInt64({STEP_BITS})), toUInt64({_masks(step_passing)}))), person_events)"
    return cleared if q.order == "strict" else f"arrayFilter(x -> bitAnd(x, {STEP_BITS}) > 0, {cleared})"


def _first_start_value(q: FunnelQuery, step_passing: dict[int, str]) -> bool:
    """Whether an event breakdown's value needs the person's step masks: unordered, a start is an event of
    any step, so one of a step the person fails is not one."""
    return (
        isinstance(q.breakdown, Breakdown)
        and q.breakdown.type == "event"
        and bool(step_passing)
        and q.order == "unordered"
    )


def _breakdown_value(
    q: FunnelQuery, is_start: str, params: dict[str, Any], step_passing: dict[int, str]
) -> str:
    """A person's breakdown value, aggregated over their rows (`event_breakdown`): an event property's
    value on their first start, or a person property's (person_computed_join.sql, by row); with cohorts, the array of 0
    (everyone: the overall steps) and the cohorts they are a member of, ARRAY JOINed before the grouping sets
    (breakdown_join)."""
    if q.breakdown is None:
        return "''"
    if isinstance(q.breakdown, CohortBreakdown):  # `person` is the grouping key: one lookup per person
        return (
            f"arrayPushFront({sql.cohort_memberships_sql(q.breakdown, params, person='person')}, toUInt64(0))"
        )
    if _first_start_value(q, step_passing):  # each start's (time, masks, value), for _person_breakdown
        return f"arraySort(groupArrayIf((timestamp, steps, row_breakdown), {is_start}))"
    if q.breakdown.type == "person":
        return "any(if(person_found, person_value, ''))"  # '': a person without a properties row
    return f"argMinIf(row_breakdown, timestamp, {is_start})"


def _person_breakdown(q: FunnelQuery, step_passing: dict[int, str]) -> str:
    if _first_start_value(q, step_passing):
        return f"arrayFirst(t -> bitAnd(t.2, {_masks(step_passing)}) > 0, event_breakdown).3"
    return "event_breakdown"


def _repeats_an_event(q: FunnelQuery) -> bool:
    """Whether an event may match several steps (two steps of one event name)."""
    return len({s.event for s in q.steps}) < len(q.steps)


def _once_per_uuid(q: FunnelQuery) -> bool:
    """Whether a duplicated event (same uuid) could take a step of its own, so the events are kept once per
    uuid: strict order, and unordered with a repeated event; ordered chains never take one."""
    return q.order == "strict" or (q.order == "unordered" and _repeats_an_event(q))


def _chains(q: FunnelQuery) -> list[str]:
    """Each start's chain as a tuple of n event indexes (0 from the first step not reached), as `chains`."""
    n = len(q.steps)
    if q.order == "unordered" and not _repeats_an_event(q):
        # an event matches one step at most: the steps taken are those whose first event from the start on
        # is within the window, in the order of those events
        firsts = ", ".join(f"next_{k}[i]" for k in range(n))
        steps = ", ".join(f"a[{k}]" for k in range(1, n + 1))
        return [
            f"arrayFilter((i, x) -> bitAnd(x, {STEP_BITS}) > 0 AND ts[i] < {{end_second:UInt64}}, idx, evs) AS starts",
            f"arrayMap(i -> arraySort(arrayFilter(x -> x > 0 AND ts[x] - ts[i] <= {{window:UInt64}}, [{firsts}])),"
            " starts) AS taken",
            f"arrayMap(a -> tuple({steps}), taken) AS chains",
        ]
    if q.order == "unordered":
        # from the start on, within the window, each event takes the first step it matches not yet taken
        free = f"bitAnd(bitAnd(evs[j], {STEP_BITS}), bitNot(acc.1))"
        take = f"(bitOr(acc.1, bitAnd({free}, bitNot({free}) + 1)), arrayPushBack(acc.2, j))"
        within = "arraySlice(idx, i, arrayCount(t -> t <= ts[i] + {window:UInt64}, ts) - i + 1)"
        steps = ", ".join(f"a[{k}]" for k in range(1, n + 1))
        return [
            f"arrayFilter((i, x) -> bitAnd(x, {STEP_BITS}) > 0 AND ts[i] < {{end_second:UInt64}}, idx, evs) AS starts",
            f"arrayMap(i -> arrayFold((acc, j) -> if({free} = 0, acc, {take}), {within},"
            " (toUInt64(0), emptyArrayUInt32())).2, starts) AS taken",
            f"arrayMap(a -> tuple({steps}), taken) AS chains",
        ]
    chains = [
        "arrayMap(i -> tuple(i), arrayFilter((i, x) -> bitTest(x, 0) AND ts[i] < {end_second:UInt64}, idx, evs))"
        " AS chains_1"
    ]
    for k in range(1, n):
        kept = ", ".join(f"c.{m}" for m in range(1, k + 1))
        in_window = f"ts[c.{k} + 1] - ts[c.1] <= {{window:UInt64}}"
        if q.order == "strict":
            # the very next event, if it matches step k + 1 (and, for step 2, is after the start's second)
            after_start = f" AND ts[c.{k} + 1] > ts[c.1]" if k == 1 else ""
            step = f"c.{k} > 0 AND bitTest(evs[c.{k} + 1], {k}){after_start} AND {in_window}"
            chains.append(
                f"arrayMap(c -> tuple({kept}, if({step}, c.{k} + 1, 0)), chains_{k}) AS chains_{k + 1}"
            )
            continue
        # the next step's candidate (its earliest event after the previous step's), then the window check
        after = "later[c.1 + 1]" if k == 1 else f"c.{k} + 1"
        chains.append(
            f"arrayMap(c -> tuple({kept}, if(c.{k} = 0, 0, next_{k}[{after}])), chains_{k}) AS candidates_{k + 1}"
        )
        chains.append(
            f"arrayMap(c -> tuple({kept}, if(c.{k + 1} > 0 AND ts[c.{k + 1}] - ts[c.1] <= {{window:UInt64}},"
            f" c.{k + 1}, 0)), candidates_{k + 1}) AS chains_{k + 1}"
        )
    return [*chains, f"chains_{n} AS chains"]


def _excluded(q: FunnelQuery) -> str:
    """A chain an exclusion hits: it reached from_step, and an exclusion event falls strictly between its
    from_step event and its to_step event (not reached: the end of its window)."""
    hits = [
        f"(c.{x.from_step} > 0 AND arrayExists(s -> s > ts[c.{x.from_step}] AND s < if(c.{x.to_step} > 0,"
        f" ts[c.{x.to_step}], ts[c.1] + {{window:UInt64}}), excluded_{j}))"
        for j, x in enumerate(q.exclusions)
    ]
    return " OR ".join(hits) or "0"


def sql_for(q: FunnelQuery, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    """One statement for the counts, the breakdown, the median step times and the histogram (funnels.sql)."""
    start, end = sql.bounds(q.date_from, q.date_to, ZoneInfo(timezone))
    params: dict[str, Any] = {
        "project_id": project_id, "window": q.window_seconds, "start": start, "end": end,
        "end_second": int(end.timestamp()), "last": end + timedelta(seconds=q.window_seconds + 1),
        "bins": q.histogram.bins if q.histogram else 1,
    }  # fmt: skip
    breakdown_steps, breakdown_join = "", ""
    if q.breakdown is not None:
        breakdown_steps = "(breakdown_value, step),"
    if isinstance(q.breakdown, CohortBreakdown):
        breakdown_join = "ARRAY JOIN breakdown_value"
    elif q.breakdown is not None:
        params["breakdown"] = q.breakdown.property
    n = len(q.steps)
    # next_k[x]: the first index >= x of an event matching step k + 1 (0: none)
    nexts = ",\n".join(
        f"arrayReverseFill(x -> x > 0, arrayMap((i, x) -> if(bitTest(x, {k}), i, 0), idx, evs)) AS next_{k}"
        for k in range(0 if q.order == "unordered" else 1, n)
    )
    per_person: dict[str, str] = {}
    step_passing = _person_conditions([s.filters for s in q.steps], "p", params, per_person)
    exclusion_passing = _person_conditions([x.series.filters for x in q.exclusions], "px", params, per_person)
    columns = ", ".join(f"{expression} AS {name}" for name, expression in per_person.items())
    person_value = ""
    if isinstance(q.breakdown, Breakdown) and q.breakdown.type == "person":
        person_value = _person_join(f"{sql.breakdown_sql(q.breakdown)} AS person_value", "ev.person")
    packed = "bitShiftLeft(toUInt64(toUInt32(toDateTime(timestamp))), 20) + steps"
    # strict order: every event of the person; the others: the events matching a step
    kept = "1" if q.order == "strict" else "steps > 0"
    evs = f"arraySort(groupArrayIf({packed}, {kept}))"
    if _once_per_uuid(q):
        evs = f"arrayMap(t -> t.1, arraySort(arrayDistinct(groupArrayIf(({packed}, uuid), {kept}))))"
    is_start = "steps > 0" if q.order == "unordered" else "bitTest(steps, 0)"
    is_start += " AND timestamp < {end:DateTime64(6, 'UTC')}"
    excluded_times = "".join(
        f",\narraySort(groupArrayIf(toUInt32(toDateTime(timestamp)), bitTest(excluding, {j}))) AS excluding_{j}"
        for j in range(len(q.exclusions))
    )
    person_excluded = "".join(
        f",\nif({exclusion_passing[j]}, excluding_{j}, []) AS excluded_{j}"
        if exclusion_passing
        else f", excluding_{j} AS excluded_{j}"
        for j in range(len(q.exclusions))
    )
    histogram = "[]"
    if q.histogram is not None:
        f, t = q.histogram.from_step, q.histogram.to_step
        histogram = f"if(level >= {t}, [(0, ts[chain.{t}] - ts[chain.{f}])], [])"
    fragments = {
        "step_events": _step_events(q, params), "breakdown_steps": breakdown_steps, "next": nexts,
        "chains": ",\n".join(_chains(q)), "excluded": _excluded(q),
        "levels": " + ".join(["1", *(f"(c.{k} > 0)" for k in range(2, n + 1))]),
        "pairs": ", ".join(["(1, 0)", *(f"({k}, ts[chain.{k}] - ts[chain.{k - 1}])" for k in range(2, n + 1))]),
        "histogram": histogram, "evs": evs,
        "breakdown_value": _breakdown_value(q, is_start, params, step_passing),
        "person_evs": _person_events(q, step_passing), "person_breakdown": _person_breakdown(q, step_passing),
        "person_excluded": person_excluded,
        "breakdown_join": breakdown_join, "excluded_times": excluded_times, "has_start": f"countIf({is_start}) > 0",
        "person_value": person_value,
        "person_properties": _person_join(columns, "g.person") if per_person else "",
        **sql.after_merges(),
    }  # fmt: skip
    return sql.statement("funnels.sql", fragments), params


COUNTS, STEP_TIMES_PER_VALUE, STEP_TIMES = 1, 4, 6  # grouping(level, breakdown_value, step) of each set


def result(q: FunnelQuery, rows: Rows) -> dict[str, Any]:
    """Overall steps, and with a breakdown the steps of each cohort (request order) or of the `limit`
    property values with the most step-1 persons."""
    counts = [r for r in rows if r["grouped"] == COUNTS]
    overall, overall_times = counts, _times(rows, STEP_TIMES, None)
    values: list[Any] = []
    if isinstance(q.breakdown, CohortBreakdown):
        # each person's rows are repeated per cohort; their value-0 rows are everyone once
        overall = [r for r in counts if r["breakdown_value"] == 0]
        overall_times = _times(rows, STEP_TIMES_PER_VALUE, 0)
        values = list(q.breakdown.cohorts)
    elif q.breakdown is not None:
        first: dict[str, int] = {}
        for r in counts:
            first[r["breakdown_value"]] = first.get(r["breakdown_value"], 0) + int(r["persons"])
        values = sorted(first, key=lambda v: (-first[v], v))[: q.breakdown.limit]
    answer: dict[str, Any] = {"steps": steps_result(q, overall, overall_times)}
    if q.histogram is not None:
        answer["histogram"] = histogram_result(q.histogram, overall_times.get(0))
    if q.breakdown is not None:
        answer["breakdowns"] = []
        for v in values:
            times = _times(rows, STEP_TIMES_PER_VALUE, v)
            of_value = [r for r in counts if r["breakdown_value"] == v]
            entry: dict[str, Any] = {"breakdown_value": v, "steps": steps_result(q, of_value, times)}
            if q.histogram is not None:
                entry["histogram"] = histogram_result(q.histogram, times.get(0))
            answer["breakdowns"].append(entry)
    return answer


def _times(rows: Rows, grouped: int, value: object) -> dict[int, dict[str, Any]]:
    """The step-time rows of a grouping set (of one breakdown value) by step (0: the histogram's)."""
    return {
        int(r["step"]): r
        for r in rows
        if r["grouped"] == grouped
        and int(r["step"]) != 1
        and (value is None or r["breakdown_value"] == value)
    }


def steps_result(q: FunnelQuery, rows: Rows, times: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    at_level: dict[int, int] = {}
    for r in rows:
        at_level[int(r["level"])] = at_level.get(int(r["level"]), 0) + int(r["persons"])
    counts = [sum(n for level, n in at_level.items() if level >= k) for k in range(1, len(q.steps) + 1)]
    result = []
    for k, (step, count) in enumerate(zip(q.steps, counts, strict=True)):
        first, previous = counts[0], counts[k - 1] if k else counts[0]
        median = times.get(k + 1) if k else None
        result.append({
            "event": step.event,
            "count": count,
            "conversion_from_first": round(count / first, 6) if first else 0,
            "conversion_from_previous": round(count / previous, 6) if previous else 0,
            "median_seconds_from_previous": float(median["median_seconds"]) if median else None,
        })  # fmt: skip
    return result


def histogram_result(h: Histogram, row: dict[str, Any] | None) -> dict[str, Any]:
    """Equal-width bins from the shortest time to convert, and its average and median (null: nobody)."""
    shape: dict[str, Any] = {"from_step": h.from_step, "to_step": h.to_step, "bins": [],
                             "average_seconds": None, "median_seconds": None}  # fmt: skip
    if row is None:
        return shape
    low, width = int(row["low"]), int(row["width"])
    shape["bins"] = [
        {"from_seconds": low + i * width, "to_seconds": low + (i + 1) * width, "count": int(count)}
        for i, count in enumerate(row["bin_counts"])
    ]
    shape["average_seconds"] = round(float(row["average_seconds"]), 6)
    shape["median_seconds"] = float(row["median_seconds"])
    return shape


FUNNEL_COLUMNS = (
    "count",
    "conversion_from_first",
    "conversion_from_previous",
    "median_seconds_from_previous",
)


def table(answer: dict[str, Any]) -> Table:
    """A row per step (`n. event`), then per breakdown value its steps (`value · n. event`)."""

    def rows(steps: list[dict[str, Any]], prefix: str) -> list[list[str]]:
        return [[f"{prefix}{n}. {step['event']}", *(cell(step[c]) for c in FUNNEL_COLUMNS)]
                for n, step in enumerate(steps, 1)]  # fmt: skip

    body = rows(answer["steps"], "")
    for b in answer.get("breakdowns", []):
        body += rows(b["steps"], f"{cell(b['breakdown_value'])} · ")
    return ["Step", *FUNNEL_COLUMNS], body

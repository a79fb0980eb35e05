"""Funnels: a request -> bound ClickHouse SQL (windowFunnel) -> per-step counts and conversions.

A person reaches step k when they did steps 1..k in order, step k within `window_seconds` of step 1
(ClickHouse `windowFunnel`, second resolution), step 1 inside the date range (the project's time zone,
`date_to` inclusive); later steps may fall after `date_to`, within the window. Persons are counted after
merges and each event once, as in trends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from workers.projects import Project
from workers.query import sql
from workers.query.sql import Breakdown, Name, Rows, Run, Series
from workers.query.tables import Table, cell

MAX_DAYS = 366 * 2
MAX_STEPS = 20
MAX_WINDOW_SECONDS = 90 * 86400


@dataclass(frozen=True)
class FunnelQuery:
    steps: tuple[Series, ...]
    window_seconds: int
    date_from: date
    date_to: date
    breakdown: Breakdown | None = None


def parse(body: object) -> FunnelQuery:
    body = sql.json_object(body)
    steps = body.get("steps")
    if not isinstance(steps, list) or len(steps) < 2:
        raise sql.BadRequest("steps: required, a list of at least 2 {event, filters?}")
    if len(steps) > MAX_STEPS:
        raise sql.BadRequest(f"steps: at most {MAX_STEPS}")
    parsed = []
    for n, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("event"), str) or not step["event"]:
            raise sql.BadRequest(f"steps[{n}].event: required, a string")
        parsed.append(Series(step["event"], sql.filters(step.get("filters"), f"steps[{n}]", person=False)))
    window = body.get("window_seconds")
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= MAX_WINDOW_SECONDS:
        raise sql.BadRequest(f"window_seconds: required, an integer from 1 to {MAX_WINDOW_SECONDS}")
    date_from, date_to = sql.date_range(body, MAX_DAYS)
    breakdown = sql.breakdown(body.get("breakdown"))
    if breakdown is not None and breakdown.type != "event":
        raise sql.BadRequest("breakdown.type: funnels break down by event properties only")
    return FunnelQuery(tuple(parsed), window, date_from, date_to, breakdown)


def names(q: FunnelQuery) -> list[Name]:
    names = sql.series_names(q.steps, "steps")
    if q.breakdown is not None:
        names.append((f"{q.breakdown.type}_property", "breakdown.property", q.breakdown.property))
    return names


async def answer(run: Run, q: FunnelQuery, project: Project) -> dict[str, Any]:
    return result(q, await run(*sql_for(q, project.id, project.timezone)))


def _condition(q: FunnelQuery, n: int, params: dict[str, Any]) -> str:
    """Step n's condition on a row of its event: its filters (step 1: also inside the range)."""
    condition = sql.filter_sql(q.steps[n].filters, f"s{n}", params)
    return f"({condition} AND timestamp < {{end:DateTime64(6, 'UTC')}})" if n == 0 else f"({condition})"


def _step_events(q: FunnelQuery, params: dict[str, Any]) -> str:
    """The rows of each event name the steps use, with their step masks, as one UNION ALL."""
    conditions = [_condition(q, n, params) for n in range(len(q.steps))]
    selects = []
    for i, event in enumerate(sorted({s.event for s in q.steps})):
        params[f"event_{i}"] = event
        steps = [n for n, s in enumerate(q.steps) if s.event == event]
        masks = " + ".join(f"toUInt32{conditions[n]} * {1 << n}" for n in steps)
        breakdown = "''"
        if q.breakdown is not None and 0 in steps:
            breakdown = sql.breakdown_sql(q.breakdown)
        fragments = {"masks": masks, "row_breakdown": breakdown, "event": f"event_{i}"}
        selects.append(sql.statement("step_events.sql", fragments))
    return "\nUNION ALL\n".join(selects)


def sql_for(q: FunnelQuery, project_id: int, timezone: str) -> tuple[str, dict[str, Any]]:
    """One statement for the counts, the breakdown and the median step times (funnels.sql)."""
    start, end = sql.bounds(q.date_from, q.date_to, ZoneInfo(timezone))
    params: dict[str, Any] = {
        "project_id": project_id, "window": q.window_seconds, "start": start, "end": end,
        "last": end + timedelta(seconds=q.window_seconds + 1),
    }  # fmt: skip
    breakdown_steps = ""
    if q.breakdown is not None:
        params["breakdown"] = q.breakdown.property
        breakdown_steps = "(breakdown_value, step),"
    # next_k[x]: the first index >= x of an event matching step k + 1 (0: none)
    nexts = ",\n".join(
        f"arrayReverseFill(x -> x > 0, arrayMap((i, x) -> if(bitTest(x, {k}), i, 0), idx, evs)) AS next_{k}"
        for k in range(1, len(q.steps))
    )
    # chains_k: each start's chain as a tuple of k event indexes (0 from the first step not reached):
    # the next step's candidate (its earliest event after the previous step's), then the window check
    chains = ["arrayMap(i -> tuple(i), arrayFilter((i, x) -> bitTest(x, 0), idx, evs)) AS chains_1"]
    for k in range(1, len(q.steps)):
        after = "later[c.1 + 1]" if k == 1 else f"c.{k} + 1"
        kept = ", ".join(f"c.{m}" for m in range(1, k + 1))
        chains.append(
            f"arrayMap(c -> tuple({kept}, if(c.{k} = 0, 0, next_{k}[{after}])), chains_{k}) AS candidates_{k + 1}"
        )
        chains.append(
            f"arrayMap(c -> tuple({kept}, if(c.{k + 1} > 0 AND ts[c.{k + 1}] - ts[c.1] <= {{window:UInt64}},"
            f" c.{k + 1}, 0)), candidates_{k + 1}) AS chains_{k + 1}"
        )
    n = len(q.steps)
    chains.append(f"chains_{n} AS chains")
    levels = " + ".join(["1", *(f"(c.{k} > 0)" for k in range(2, n + 1))])
    pairs = ", ".join(["(1, 0)", *(f"({k}, ts[chain.{k}] - ts[chain.{k - 1}])" for k in range(2, n + 1))])
    fragments = {
        "step_events": _step_events(q, params), "breakdown_steps": breakdown_steps, "next": nexts,
        "chains": ",\n".join(chains), "levels": levels, "pairs": pairs,
        **sql.after_merges(),
    }  # fmt: skip
    return sql.statement("funnels.sql", fragments), params


COUNTS, STEP_TIMES_PER_VALUE, STEP_TIMES = 1, 4, 6  # grouping(level, breakdown_value, step) of each set


def result(q: FunnelQuery, rows: Rows) -> dict[str, Any]:
    """Overall steps, and with a breakdown the steps of the `limit` values with the most step-1 persons."""
    counts = [r for r in rows if r["grouped"] == COUNTS]
    answer: dict[str, Any] = {"steps": steps_result(q, counts, _medians(rows, STEP_TIMES, None))}
    if q.breakdown is not None:
        first: dict[str, int] = {}
        for r in counts:
            first[r["breakdown_value"]] = first.get(r["breakdown_value"], 0) + int(r["persons"])
        top = sorted(first, key=lambda v: (-first[v], v))[: q.breakdown.limit]
        answer["breakdowns"] = [
            {"breakdown_value": v, "steps": steps_result(
                q, [r for r in counts if r["breakdown_value"] == v], _medians(rows, STEP_TIMES_PER_VALUE, v))}
            for v in top
        ]  # fmt: skip
    return answer


def _medians(rows: Rows, grouped: int, value: str | None) -> dict[int, float]:
    return {
        int(r["step"]): float(r["median_seconds"])
        for r in rows
        if r["grouped"] == grouped and int(r["step"]) > 1 and (value is None or r["breakdown_value"] == value)
    }


def steps_result(q: FunnelQuery, rows: Rows, medians: dict[int, float]) -> list[dict[str, Any]]:
    at_level: dict[int, int] = {}
    for r in rows:
        at_level[int(r["level"])] = at_level.get(int(r["level"]), 0) + int(r["persons"])
    counts = [sum(n for level, n in at_level.items() if level >= k) for k in range(1, len(q.steps) + 1)]
    result = []
    for k, (step, count) in enumerate(zip(q.steps, counts, strict=True)):
        first, previous = counts[0], counts[k - 1] if k else counts[0]
        result.append({
            "event": step.event,
            "count": count,
            "conversion_from_first": round(count / first, 6) if first else 0,
            "conversion_from_previous": round(count / previous, 6) if previous else 0,
            "median_seconds_from_previous": medians.get(k + 1),
        })  # fmt: skip
    return result


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

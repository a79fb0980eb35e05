"""The analytics definitions computed directly with pandas from generated rows, to check the query API.

Independent of the SQL: each function reads a request body and a project's `Events` and follows the
written definitions. `Events` takes a Dataset (one project's or several concatenated) and keeps one
project: each event once (by uuid), the person it counts for (its distinct id's `person_distinct_ids` row
with the highest version, else the event's own person id) and that person's current properties (their
`persons` row with the highest version). Ranges are [date_from 00:00, date_to + 1 00:00) in the project's
time zone.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd

from bench.generate import Dataset

FREQUENCY_LABELS = [*map(str, range(1, 10)), "10+"]
Body = dict[str, Any]


class Events:
    """One project's events, once each, in time order (ties by uuid), with persons resolved."""

    def __init__(self, data: Dataset, project_id: int, timezone: str) -> None:
        self.tz = timezone
        events = data.events[data.events["project_id"] == project_id].drop_duplicates("uuid")
        ids = data.person_distinct_ids[data.person_distinct_ids["project_id"] == project_id]
        current = ids.sort_values("version").drop_duplicates("distinct_id", keep="last")
        person_of = dict(zip(current["distinct_id"], current["person_id"], strict=True))
        rows = data.persons[data.persons["project_id"] == project_id].sort_values("version")
        rows = rows.drop_duplicates("id", keep="last")
        properties_of = {
            p: orjson.loads(text) for p, text in zip(rows["id"], rows["properties"], strict=True)
        }
        frame = events.sort_values(["timestamp", "uuid"], ignore_index=True)
        frame["person"] = [
            person_of.get(d, p) for d, p in zip(frame["distinct_id"], frame["person_id"], strict=True)
        ]
        frame["props"] = pd.Series([orjson.loads(t) for t in frame["properties"]], dtype=object)
        frame["person_props"] = pd.Series([properties_of.get(p, {}) for p in frame["person"]], dtype=object)
        frame["session"] = _sessionize(frame)
        self.frame = frame

    def window(self, body: Body) -> tuple[pd.Timestamp, pd.Timestamp]:
        start = pd.Timestamp(body["date_from"]).tz_localize(self.tz)
        return start, (pd.Timestamp(body["date_to"]) + pd.Timedelta(days=1)).tz_localize(self.tz)

    def between(self, start: pd.Timestamp, end: pd.Timestamp | None = None) -> pd.DataFrame:
        ts = self.frame["timestamp"]
        return self.frame[(ts >= start) & (ts < end)] if end is not None else self.frame[ts >= start]

    def labels(self, stamps: pd.Series, interval: str) -> pd.Series:
        """The label of each instant's bucket: local hour start with its offset, or the local bucket date."""
        local = stamps.dt.tz_convert(self.tz)
        wall = local.dt.tz_localize(None)
        if interval == "hour":
            starts = stamps - (wall - wall.dt.floor("h"))  # the instant the local hour began
            text = {s: s.tz_convert(self.tz).isoformat(timespec="minutes") for s in starts.unique()}
            return starts.map(text)
        day = wall.dt.normalize()
        if interval == "week":
            day = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
        if interval == "month":
            day = day - pd.to_timedelta(day.dt.day - 1, unit="D")
        return day.dt.strftime("%Y-%m-%d")

    def all_labels(self, body: Body, interval: str) -> list[str]:
        """Every bucket of the range, from the one containing date_from."""
        if interval == "hour":
            start, end = self.window(body)
            hours = pd.date_range(start.tz_convert("UTC"), end.tz_convert("UTC"), freq="h", inclusive="left")
            return [h.tz_convert(self.tz).isoformat(timespec="minutes") for h in hours]
        day, last = date.fromisoformat(body["date_from"]), date.fromisoformat(body["date_to"])
        day -= timedelta(days=day.weekday()) if interval == "week" else timedelta(0)
        day = day.replace(day=1) if interval == "month" else day
        out = []
        while day <= last:
            out.append(day.isoformat())
            if interval == "month":
                day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
            else:
                day += timedelta(days=7 if interval == "week" else 1)
        return out


# Filters ------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A filter value as the text it compares with: booleans as JSON, whole floats without '.0'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _equal(stored: Any, value: Any) -> bool:
    """A string compares to the string value, anything else by its JSON text."""
    text = _text(value)
    return stored == text if isinstance(stored, str) else orjson.dumps(stored).decode() == text


def _number(stored: Any) -> float | None:
    return float(stored) if isinstance(stored, int | float) and not isinstance(stored, bool) else None


def matches(f: dict[str, Any], props: dict[str, Any]) -> bool:
    key, op, value = f["property"], f["op"], f.get("value")
    if op in ("is_set", "is_not_set"):
        return (key in props) == (op == "is_set")
    if key not in props:
        return False
    stored = props[key]
    if op in ("eq", "neq"):
        return _equal(stored, value) == (op == "eq")
    if op == "in":
        return any(_equal(stored, v) for v in value)
    if op == "contains":
        return isinstance(stored, str) and _text(value).lower() in stored.lower()
    number = _number(stored)
    compare: dict[str, Callable[[float, float], bool]] = {
        "gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__,
    }  # fmt: skip
    return number is not None and compare[op](number, float(value))


def matching(rows: pd.DataFrame, filters: list[dict[str, Any]]) -> pd.DataFrame:
    if not filters:
        return rows
    columns = {"event": rows["props"].tolist(), "person": rows["person_props"].tolist()}
    keep = [all(matches(f, columns[f.get("type", "event")][i]) for f in filters) for i in range(len(rows))]
    return rows[np.array(keep, dtype=bool)]


def string_value(props: dict[str, Any], key: str) -> str:
    """A breakdown value: a string's value, a number's or boolean's JSON text, "" otherwise (missing, null,
    an object or a list)."""
    value = props.get(key)
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode() if isinstance(value, bool | int | float) else ""


# Trends -------------------------------------------------------------------------------------------------


def trends(ev: Events, body: Body) -> Body:
    measure, interval = body.get("measure", "uniques"), body.get("interval", "day")
    rows = ev.between(*ev.window(body))
    rows = rows.assign(bucket=ev.labels(rows["timestamp"], interval))
    active = rows.groupby("bucket")["person"].nunique().to_dict()
    labels = ev.all_labels(body, interval)
    series = []
    for item in body["events"]:
        mine = matching(rows[rows["event"] == item["event"]], item.get("filters") or [])
        if measure in ("frequency", "distribution"):
            labels_, values = (
                frequency(mine) if measure == "frequency" else distribution(mine, body["property"])
            )
            series.append(
                {"event": item["event"], "breakdown_value": None, "labels": labels_, "values": values}
            )
            continue
        groups: list[tuple[str | None, pd.DataFrame]] = [(None, mine)]
        if body.get("breakdown"):
            b = body["breakdown"]
            column = "props" if b.get("type", "event") == "event" else "person_props"
            value = pd.Series([string_value(p, b["property"]) for p in mine[column]], index=mine.index)
            counts = Counter(value.tolist())
            top = sorted(counts, key=lambda v: (-counts[v], v))[: b.get("limit", 10)]
            groups = [(v, mine[value == v]) for v in top]
        for value_, group in groups:
            values = bucket_values(group, measure, body.get("property"), active)
            series.append({"event": item["event"], "breakdown_value": value_, "labels": labels,
                           "values": [values.get(label, 0) for label in labels]})  # fmt: skip
    return {"series": series}


def bucket_values(
    rows: pd.DataFrame, measure: str, prop: str | None, active: dict[str, int]
) -> dict[str, float]:
    out: dict[str, float] = {}
    for bucket, group in rows.groupby("bucket"):
        events, persons = len(group), group["person"].nunique()
        numbers = [n for p in group["props"] if prop in p and (n := _number(p[prop])) is not None]
        if measure in ("uniques", "totals"):
            out[str(bucket)] = persons if measure == "uniques" else events
        elif measure == "average":
            out[str(bucket)] = round(events / persons, 6)
        elif measure == "active_percent":
            out[str(bucket)] = round(100 * persons / active[str(bucket)], 6)
        elif measure == "sum":
            out[str(bucket)] = sum(numbers)
        else:
            out[str(bucket)] = round(sum(numbers) / len(numbers), 6) if numbers else 0
    return out


def frequency(rows: pd.DataFrame) -> tuple[list[str], list[int]]:
    times = Counter(min(n, 10) for n in rows.groupby("person").size().tolist())
    return FREQUENCY_LABELS, [times.get(n, 0) for n in range(1, 11)]


def distribution(rows: pd.DataFrame, prop: str) -> tuple[list[str], list[int]]:
    counts = Counter(orjson.dumps(p[prop]).decode() for p in rows["props"] if prop in p)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:100]
    return [v for v, _ in ranked], [n for _, n in ranked]


# Funnels ------------------------------------------------------------------------------------------------


def funnels(ev: Events, body: Body) -> Body:
    """windowFunnel at second resolution: a person's events in time order, those in one second in step
    order; a start is a step-1 event in the range; the chain takes each next step at the earliest
    matching event after the previous step's, strictly after the start's second, within the window."""
    steps, window = body["steps"], body["window_seconds"]
    start, end = ev.window(body)
    rows = ev.between(start)
    micros = rows["timestamp"].dt.as_unit("us").astype("int64")  # pandas < 3 may hold nanoseconds
    seconds = (micros // 1_000_000).to_numpy()
    entries: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    for k, step in enumerate(steps):
        hit = matching(rows[rows["event"] == step["event"]], step.get("filters") or [])
        at = rows.index.get_indexer(hit.index)
        inside = (hit["timestamp"] < end).tolist()
        for person, second, first in zip(hit["person"], seconds[at], inside, strict=True):
            entries[person].append((int(second), k, first and k == 0))
    chains = {person: _deepest_chain(sorted(e), len(steps), window) for person, e in entries.items()}
    chains = {person: chain for person, chain in chains.items() if chain}
    answer: Body = {"steps": _steps(steps, list(chains.values()))}
    if body.get("breakdown"):
        b = body["breakdown"]
        first = matching(ev.between(start, end), steps[0].get("filters") or [])
        first = first[first["event"] == steps[0]["event"]].drop_duplicates("person")  # time order: earliest
        value_of = dict(
            zip(first["person"], first["props"].map(lambda p: string_value(p, b["property"])), strict=True)
        )
        by_value: dict[str, list[list[int]]] = defaultdict(list)
        for person, chain in chains.items():
            by_value[value_of[person]].append(chain)
        top = sorted(by_value, key=lambda v: (-len(by_value[v]), v))[: b.get("limit", 10)]
        answer["breakdowns"] = [{"breakdown_value": v, "steps": _steps(steps, by_value[v])} for v in top]
    return answer


def _deepest_chain(entries: list[tuple[int, int, bool]], n: int, window: int) -> list[int]:
    """The chain (step times) of the first start reaching the deepest step; [] without a start."""
    positions: list[list[int]] = [[] for _ in range(n)]
    for i, (_, k, _) in enumerate(entries):
        positions[k].append(i)
    times = [[entries[i][0] for i in p] for p in positions]
    best: list[int] = []
    for i, (t0, _, is_start) in enumerate(entries):
        if not is_start:
            continue
        chain, at = [t0], i
        for step in range(1, n):
            j = max(bisect.bisect_right(positions[step], at), bisect.bisect_right(times[step], t0))
            if j == len(positions[step]) or times[step][j] > t0 + window:
                break
            chain.append(times[step][j])
            at = positions[step][j]
        if len(chain) > len(best):
            best = chain
        if len(best) == n:
            break
    return best


def _steps(steps: list[Body], chains: list[list[int]]) -> list[Body]:
    counts = [sum(1 for c in chains if len(c) > k) for k in range(len(steps))]
    out = []
    for k, step in enumerate(steps):
        previous = counts[k - 1] if k else counts[0]
        gaps = [c[k] - c[k - 1] for c in chains if len(c) > k] if k else []
        out.append({
            "event": step["event"], "count": counts[k],
            "conversion_from_first": round(counts[k] / counts[0], 6) if counts[0] else 0,
            "conversion_from_previous": round(counts[k] / previous, 6) if previous else 0,
            "median_seconds_from_previous": float(statistics.median(gaps)) if gaps else None,
        })  # fmt: skip
    return out


# Retention, sessions, paths, events ------------------------------------------------------------------


def retention(ev: Events, body: Body) -> Body:
    period, periods = body.get("period", "day"), body.get("periods", 7)
    start, end = ev.window(body)
    rows = ev.between(start)
    rows = rows.assign(
        period=ev.labels(rows["timestamp"], "week" if period == "week" else "day").map(date.fromisoformat)
    )
    starts = rows[(rows["event"] == body["start_event"]) & (rows["timestamp"] < end)]
    cohort_of = starts.groupby("person")["period"].min().to_dict()
    returning = rows if body["return_event"] == "$any" else rows[rows["event"] == body["return_event"]]
    returned = returning.groupby("person")["period"].agg(set).to_dict()
    step = timedelta(days=7 if period == "week" else 1)
    matrix: dict[date, list[int]] = {}
    for person, cohort in cohort_of.items():
        values = matrix.setdefault(cohort, [0] * (periods + 1))
        values[0] += 1
        for k in range(1, periods + 1):
            values[k] += cohort + k * step in returned.get(person, set())
    return {
        "cohorts": [{"date": d.isoformat(), "size": v[0], "values": v} for d, v in sorted(matrix.items())]
    }


SESSION_GAP_MS = 30 * 60_000


def _sessionize(frame: pd.DataFrame) -> list[str]:
    """Each event's session, `<kind> <start ms> <key>`, walking the events in time order: the SDK's
    `$session_id` (explicit) or else the distinct id (window) is the key, and a key's session ends after
    a gap of more than SESSION_GAP_MS (the Flink job's sessions for events read in time order)."""
    last: dict[tuple[str, str], tuple[int, int]] = {}  # key -> (start ms, last ms) of its open session
    out = []
    for props, distinct_id, stamp in zip(
        frame["props"], frame["distinct_id"], frame["timestamp"], strict=True
    ):
        sid = string_value(props, "$session_id")
        key = ("explicit", sid) if sid else ("window", distinct_id)
        ms = stamp.value // 1_000_000
        start, previous = last.get(key, (ms, ms))
        if ms - previous > SESSION_GAP_MS:
            start = ms
        last[key] = (start, ms)
        out.append(f"{key[0]} {start} {key[1]}")
    return out


def _session_table(ev: Events) -> pd.DataFrame:
    """One row per session: its first and last event (ms) and its number of events."""
    ms = ev.frame["timestamp"].map(lambda t: t.value // 1_000_000)
    table = (
        pd.DataFrame({"session": ev.frame["session"], "ms": ms})
        .groupby("session")["ms"]
        .agg(["min", "max", "size"])
    )
    table["start"] = pd.to_datetime(table["min"], unit="ms", utc=True)
    return table


def sessions(ev: Events, body: Body) -> Body:
    interval = body.get("interval", "day")
    start, end = ev.window(body)
    grouped = _session_table(ev)
    grouped = grouped[(grouped["start"] >= start) & (grouped["start"] < end)]
    if body.get("filters"):
        grouped = grouped[
            grouped.index.isin(set(matching(ev.between(start, end), body["filters"])["session"]))
        ]
    grouped["bucket"] = ev.labels(grouped["start"], interval)
    grouped["duration"] = (grouped["max"] - grouped["min"]) / 1000
    labels = ev.all_labels(body, interval)
    per = {str(b): g for b, g in grouped.groupby("bucket")}
    return {
        "labels": labels,
        "sessions": [len(per[b]) if b in per else 0 for b in labels],
        "avg_duration_seconds": [round(per[b]["duration"].mean(), 6) if b in per else 0 for b in labels],
        "bounce_rate": [round((per[b]["size"] == 1).mean(), 6) if b in per else 0 for b in labels],
    }


def paths(ev: Events, body: Body) -> Body:
    start_event, steps, limit = body.get("start_event"), body.get("steps", 5), body.get("limit", 50)
    rows = ev.between(*ev.window(body))  # in time order, ties by uuid
    edges: Counter[tuple[str, str]] = Counter()
    for names in rows.groupby("session", sort=False)["event"].agg(list):
        if start_event is not None:
            if start_event not in names:
                continue
            names = names[names.index(start_event) :]
        names = names[:steps]
        edges.update((f"{i + 1}_{names[i]}", f"{i + 2}_{names[i + 1]}") for i in range(len(names) - 1))
    ranked = sorted(edges.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))[:limit]
    return {"edges": [{"source": s, "target": t, "value": n} for (s, t), n in ranked]}


def events(ev: Events, *, event: str | None = None, distinct_ids: list[str] | None = None,
           filters: list[Body] | None = None, after: pd.Timestamp | None = None,
           before: pd.Timestamp | None = None) -> list[Body]:  # fmt: skip
    """Every matching event, newest first (ties by uuid, descending), as the events API lists them."""
    rows = matching(ev.frame, filters or [])
    if event is not None:
        rows = rows[rows["event"] == event]
    if distinct_ids is not None:
        rows = rows[rows["distinct_id"].isin(distinct_ids)]
    if after is not None:
        rows = rows[rows["timestamp"] >= after]
    if before is not None:
        rows = rows[rows["timestamp"] < before]
    rows = rows.iloc[::-1]
    return [
        {"uuid": r.uuid, "event": r.event, "distinct_id": r.distinct_id, "person_id": r.person_id,
         "timestamp": r.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f"), "properties": r.props}
        for r in rows.itertuples()
    ]  # fmt: skip


# Stickiness, lifecycle -------------------------------------------------------------------------------


def stickiness(ev: Events, body: Body) -> Body:
    """Per series, values[k - 1] = persons who did the event in exactly k of the range's intervals."""
    interval = body.get("interval", "day")
    rows = ev.between(*ev.window(body))
    n = len(ev.all_labels(body, interval))
    series = []
    for item in body["events"]:
        mine = matching(rows[rows["event"] == item["event"]], item.get("filters") or [])
        active = (
            mine.assign(bucket=ev.labels(mine["timestamp"], interval)).groupby("person")["bucket"].nunique()
        )
        times = Counter(active.tolist())
        series.append({"event": item["event"], "labels": [str(k) for k in range(1, n + 1)],
                       "values": [times.get(k, 0) for k in range(1, n + 1)]})  # fmt: skip
    return {"series": series}


def lifecycle(ev: Events, body: Body) -> Body:
    """Per interval B of the range, with active(p, B) = p did the event (passing the filters) in B: new
    (active, first matching event ever in B), returning (active in B and B - 1, not new), resurrecting
    (active in B, not in B - 1, first event before B), dormant = -(active in B - 1, not in B)."""
    interval = body.get("interval", "day")
    labels = ev.all_labels(body, interval)
    before_first = (date.fromisoformat(labels[0]) - timedelta(days=1)).isoformat()
    previous = ev.all_labels({**body, "date_from": before_first, "date_to": before_first}, interval)[0]
    _, end = ev.window(body)
    rows = matching(ev.frame[ev.frame["event"] == body["event"]], body.get("filters") or [])
    rows = rows[rows["timestamp"] < end]
    rows = rows.assign(bucket=ev.labels(rows["timestamp"], interval))
    first_of = rows.groupby("person")["bucket"].min().to_dict()
    active_in = rows.groupby("person")["bucket"].agg(set).to_dict()
    out: Body = {"labels": labels, "new": [], "returning": [], "resurrecting": [], "dormant": []}
    for before, label in zip([previous, *labels], labels, strict=False):
        counts: Counter[str] = Counter()
        for person, active in active_in.items():
            if label in active:
                status = (
                    "new"
                    if first_of[person] == label
                    else "returning"
                    if before in active
                    else "resurrecting"
                )
                counts[status] += 1
            elif before in active:
                counts["dormant"] -= 1
        for status in ("new", "returning", "resurrecting", "dormant"):
            out[status].append(counts[status])
    return out

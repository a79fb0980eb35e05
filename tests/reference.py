"""The analytics definitions computed directly with pandas from generated rows, to check the query API.

Independent of the SQL: each function reads a request body and a project's `Events` and follows the
written definitions. `Events` takes a Dataset (one project's or several concatenated) and keeps one
project: each event once (by uuid), the person it counts for (its distinct id's `person_distinct_ids` row
with the highest version, else the event's own person id) and that person's current properties (their
`persons` row with the highest version). Ranges are [date_from 00:00, date_to + 1 00:00) in the project's
time zone.
"""

from __future__ import annotations

import math
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
Cohorts = dict[int, set[str]]  # cohort id -> its members (person ids)


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


def matching(
    rows: pd.DataFrame, filters: list[dict[str, Any]], cohorts: Cohorts | None = None
) -> pd.DataFrame:
    """The rows passing every filter; a cohort filter keeps the rows whose person is (`in`, the default)
    or is not (`not_in`) one of the cohort's members (`cohorts`)."""
    if not filters:
        return rows
    columns = {"event": rows["props"].tolist(), "person": rows["person_props"].tolist()}
    persons = rows["person"].tolist()

    def passes(f: dict[str, Any], i: int) -> bool:
        if f.get("type") == "cohort":
            return (persons[i] in (cohorts or {})[f["value"]]) == (f.get("op", "in") == "in")
        return matches(f, columns[f.get("type", "event")][i])

    keep = [all(passes(f, i) for f in filters) for i in range(len(rows))]
    return rows[np.array(keep, dtype=bool)]


def string_value(props: dict[str, Any], key: str) -> str:
    """A breakdown value: a string's value, a number's or boolean's JSON text, "" otherwise (missing, null,
    an object or a list)."""
    value = props.get(key)
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode() if isinstance(value, bool | int | float) else ""


# Trends -------------------------------------------------------------------------------------------------


def trends(ev: Events, body: Body, cohorts: Cohorts | None = None) -> Body:
    measure, interval = body.get("measure", "uniques"), body.get("interval", "day")
    rows = ev.between(*ev.window(body))
    rows = rows.assign(bucket=ev.labels(rows["timestamp"], interval))
    active = rows.groupby("bucket")["person"].nunique().to_dict()
    labels = ev.all_labels(body, interval)
    series = []
    for item in body["events"]:
        mine = matching(rows[rows["event"] == item["event"]], item.get("filters") or [], cohorts)
        if measure in ("frequency", "distribution"):
            labels_, values = (
                frequency(mine) if measure == "frequency" else distribution(mine, body["property"])
            )
            series.append(
                {"event": item["event"], "breakdown_value": None, "labels": labels_, "values": values}
            )
            continue
        groups: list[tuple[str | None, pd.DataFrame]] = [(None, mine)]
        if body.get("breakdown", {}).get("type") == "cohort":
            groups = [
                (c, mine[mine["person"].isin((cohorts or {})[c])]) for c in body["breakdown"]["cohorts"]
            ]
        elif body.get("breakdown"):
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


def funnels(ev: Events, body: Body, cohorts: Cohorts | None = None) -> Body:
    """A person's events in time order at second resolution, those in one second by their step mask (the sum
    of 2^(k-1) over the steps k they match); strict order keeps every event, the others those matching a
    step. A start is an event in the range matching step 1 (unordered: any step); its chain as the order
    says; a chain an exclusion hits is dropped; a person's chain is their first reaching the deepest level."""
    steps, window, order = body["steps"], body["window_seconds"], body.get("order", "ordered")
    exclusions = body.get("exclusions") or []
    start, end = ev.window(body)
    rows = ev.between(start)
    micros = rows["timestamp"].dt.as_unit("us").astype("int64")  # pandas < 3 may hold nanoseconds
    seconds = (micros // 1_000_000).tolist()

    def masks(items: list[Body]) -> list[int]:
        mask = np.zeros(len(rows), dtype=np.int64)
        for k, item in enumerate(items):
            hit = matching(rows[rows["event"] == item["event"]], item.get("filters") or [], cohorts)
            mask[rows.index.get_indexer(hit.index)] |= 1 << k
        return [int(m) for m in mask]

    step_masks, exclusion_masks = masks(steps), masks(exclusions)
    inside = (rows["timestamp"] < end).tolist()
    events: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    excluded_at: dict[str, list[list[int]]] = defaultdict(lambda: [[] for _ in exclusions])
    first_start: dict[str, int] = {}  # the row (time order, ties by uuid) of each person's first start
    for n, (person, second, mask, excl, within) in enumerate(
        zip(rows["person"], seconds, step_masks, exclusion_masks, inside, strict=True)
    ):
        if mask or order == "strict":
            events[person].append((second, mask, within))
        for j in range(len(exclusions)):
            if excl >> j & 1:
                excluded_at[person][j].append(second)
        starts_here = mask > 0 if order == "unordered" else mask & 1
        if starts_here and within and person not in first_start:
            first_start[person] = n
    chains = {}
    for person in first_start:
        chain = _person_chain(
            sorted(events[person]), len(steps), window, order, exclusions, excluded_at[person]
        )
        if chain:
            chains[person] = chain
    answer: Body = {"steps": _steps(steps, list(chains.values()))}
    histogram = body.get("histogram")
    if histogram:
        answer["histogram"] = _histogram(histogram, list(chains.values()))
    if body.get("breakdown", {}).get("type") == "cohort":
        answer["breakdowns"] = []
        for c in body["breakdown"]["cohorts"]:
            of_cohort = [chain for person, chain in chains.items() if person in (cohorts or {})[c]]
            entry = {"breakdown_value": c, "steps": _steps(steps, of_cohort)}
            if histogram:
                entry["histogram"] = _histogram(histogram, of_cohort)
            answer["breakdowns"].append(entry)
    elif body.get("breakdown"):
        b = body["breakdown"]
        if b.get("type", "event") == "event":
            props = rows["props"].tolist()
            value_of = {p: string_value(props[n], b["property"]) for p, n in first_start.items()}
        else:
            person_props = dict(zip(rows["person"], rows["person_props"], strict=False))
            value_of = {p: string_value(person_props[p], b["property"]) for p in first_start}
        by_value: dict[str, list[list[int]]] = defaultdict(list)
        for person, chain in chains.items():
            by_value[value_of[person]].append(chain)
        top = sorted(by_value, key=lambda v: (-len(by_value[v]), v))[: b.get("limit", 10)]
        answer["breakdowns"] = []
        for v in top:
            entry: Body = {"breakdown_value": v, "steps": _steps(steps, by_value[v])}
            if histogram:
                entry["histogram"] = _histogram(histogram, by_value[v])
            answer["breakdowns"].append(entry)
    return answer


def _person_chain(events: list[tuple[int, int, bool]], n: int, window: int, order: str,
                  exclusions: list[Body], excluded_at: list[list[int]]) -> list[int]:  # fmt: skip
    """The step times of the person's first non-excluded start reaching the deepest level; [] if none."""
    best: list[int] = []
    for i, (t0, mask, within) in enumerate(events):
        if not within or not (mask if order == "unordered" else mask & 1):
            continue
        taken = [i]
        if order == "unordered":
            done = mask & -mask
            for j in range(i + 1, len(events)):
                if events[j][0] > t0 + window:
                    break
                free = events[j][1] & ~done
                if free:
                    done |= free & -free
                    taken.append(j)
        else:
            for k in range(1, n):
                at = taken[-1] + 1
                if order == "ordered":  # the earliest event matching step k + 1 after the previous step's
                    while at < len(events) and not (events[at][1] >> k & 1 and events[at][0] > t0):
                        at += 1
                ok = at < len(events) and events[at][1] >> k & 1 and t0 < events[at][0] <= t0 + window
                if not ok:
                    break
                taken.append(at)
        times = [events[j][0] for j in taken]
        if _excluded(times, t0 + window, exclusions, excluded_at):
            continue
        if len(times) > len(best):
            best = times
    return best


def _excluded(
    times: list[int], window_end: int, exclusions: list[Body], excluded_at: list[list[int]]
) -> bool:
    for x, seconds in zip(exclusions, excluded_at, strict=True):
        if len(times) < x["from_step"]:
            continue
        after = times[x["from_step"] - 1]
        before = times[x["to_step"] - 1] if len(times) >= x["to_step"] else window_end
        if any(after < s < before for s in seconds):
            return True
    return False


def _histogram(h: Body, chains: list[list[int]]) -> Body:
    first, last, bins = h["from_step"], h["to_step"], h.get("bins", 10)
    times = [c[last - 1] - c[first - 1] for c in chains if len(c) >= last]
    out: Body = {
        "from_step": first,
        "to_step": last,
        "bins": [],
        "average_seconds": None,
        "median_seconds": None,
    }
    if not times:
        return out
    low = min(times)
    width = max(1, math.ceil((max(times) - low + 1) / bins))
    counts = Counter((t - low) // width for t in times)
    out["bins"] = [{"from_seconds": low + i * width, "to_seconds": low + (i + 1) * width, "count": counts.get(i, 0)}
                   for i in range(bins)]  # fmt: skip
    out["average_seconds"] = round(statistics.mean(times), 6)
    out["median_seconds"] = float(statistics.median(times))
    return out


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


def sessions(ev: Events, body: Body, cohorts: Cohorts | None = None) -> Body:
    interval = body.get("interval", "day")
    start, end = ev.window(body)
    grouped = _session_table(ev)
    grouped = grouped[(grouped["start"] >= start) & (grouped["start"] < end)]
    if body.get("filters"):
        grouped = grouped[
            grouped.index.isin(set(matching(ev.between(start, end), body["filters"], cohorts)["session"]))
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
           before: pd.Timestamp | None = None, cohorts: Cohorts | None = None) -> list[Body]:  # fmt: skip
    """Every matching event, newest first (ties by uuid, descending), as the events API lists them."""
    rows = matching(ev.frame, filters or [], cohorts)
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


# Cohorts -----------------------------------------------------------------------------------------------


class People:
    """One project's persons as cohorts see them: each person's current row (highest version) and each
    distinct id's current person (its highest version row)."""

    def __init__(self, data: Dataset, project_id: int) -> None:
        rows = data.persons[data.persons["project_id"] == project_id].sort_values("version")
        rows = rows.drop_duplicates("id", keep="last")
        self.properties = {p: orjson.loads(t) for p, t in zip(rows["id"], rows["properties"], strict=True)}
        self.population = {p for p, d in zip(rows["id"], rows["is_deleted"], strict=True) if not d}
        ids = data.person_distinct_ids[data.person_distinct_ids["project_id"] == project_id]
        ids = ids.sort_values("version").drop_duplicates("distinct_id", keep="last")
        self.person_of = dict(zip(ids["distinct_id"], ids["person_id"], strict=True))


def static_members(people: People, distinct_ids: list[str]) -> tuple[set[str], int]:
    """The persons of the ids that have one, and how many distinct ids have none."""
    unique = set(distinct_ids)
    return {people.person_of[d] for d in unique if d in people.person_of}, sum(
        d not in people.person_of for d in unique
    )


def dynamic_members(ev: Events, people: People, body: Body, computed_at: pd.Timestamp) -> set[str]:
    """The persons (not deleted) passing all (or any) filters at `computed_at`: person filters on their
    current properties; behavioural ones count their events (after merges, each once) in
    [computed_at - days, computed_at]."""
    passing = []
    for f in body["filters"]:
        if f.get("type") == "behavioral":
            ts = ev.frame["timestamp"]
            since = computed_at - pd.Timedelta(days=f["days"])
            done = ev.frame[(ev.frame["event"] == f["event"]) & (ts >= since) & (ts <= computed_at)]
            counts = done.groupby("person").size()
            did = {p for p, n in counts.items() if n >= f.get("min_count", 1)}
            passing.append(did if f.get("did", True) else people.population - did)
        else:
            passing.append({p for p in people.population if matches(f, people.properties[p])})
    joined = set.intersection(*passing) if body.get("match", "all") == "all" else set.union(*passing)
    return joined & people.population


def cohort_persons(people: People, members: set[str]) -> list[Body]:
    """The members as `GET /api/cohorts/{id}/persons` lists them, by person id."""
    ids_of: dict[str, list[str]] = defaultdict(list)
    for distinct_id, person in people.person_of.items():
        ids_of[person].append(distinct_id)
    return [
        {"id": p, "distinct_ids": sorted(ids_of[p]), "properties": people.properties.get(p, {})}
        for p in sorted(members)
    ]


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

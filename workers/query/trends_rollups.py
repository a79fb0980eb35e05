"""Trends `totals` and `uniques` from the Flink job's rollups where they cover a bucket, raw events elsewhere.

The job's minute counts (event_counts_1m, rolled by materialized views into event_counts_1h by UTC hour and
event_counts_1d by the project's local day) miss only the events that came too late for their minute, and
those are in `late_events`: so a bucket's total is its rollup count plus its late events, and its persons
are those of the rollup's (distinct id, person id) pairs and of its late events, each distinct id mapped to
its person after merges as raw trends do. The rollups cover [first minute, last minute + 1 min) of a project:
a bucket outside it (before the job ran, or not yet closed by the job's watermark) is counted from raw events.
A filter or a breakdown needs the events' properties, so only plain series use them (README, Flink job).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from workers.metrics import QUERY_ROLLUP_BUCKETS
from workers.query import sql
from workers.query.sql import INTERVALS, Rows, Run, Series, bucket_start, label

if TYPE_CHECKING:  # trends uses this module for its answer
    from workers.query.trends import TrendsQuery

Raw = Callable[["TrendsQuery", Series], Awaitable[Rows]]
MINUTE = timedelta(minutes=1)
DAY_BUCKETS = {
    "day": "local_day",
    "week": "toStartOfWeek(local_day, 1)",
    "month": "toStartOfMonth(local_day)",
}


MEASURES = {"totals": "events", "uniques": "persons"}  # the measure -> its column in trends.sql's rows
LATE_BUCKETS = {"hour": INTERVALS["hour"], "day": "toDate(timestamp, {tz:String})", "week": INTERVALS["week"],
                "month": INTERVALS["month"]}  # fmt: skip


def applies(q: TrendsQuery, series: Series) -> bool:
    return q.measure in MEASURES and q.breakdown is None and not series.filters


Coverage = tuple[datetime, datetime] | None  # [first minute, last minute + 1 min) of a project's rollups


async def coverage(run: Run, project_id: int) -> Coverage:
    """What the project's rollups cover (None: nothing yet), read once per request."""
    [row] = await run(sql.fragment("rollup_coverage.sql"), {"project_id": project_id})
    if row["first"] is None or row["last"] is None:
        return None
    return _utc(row["first"]), _utc(row["last"]) + MINUTE


async def totals(
    run: Run, raw: Raw, q: TrendsQuery, series: Series, project_id: int, timezone: str, covers: Coverage
) -> Rows:
    """Rows like trends.sql's (bucket, events or persons) for one series: buckets `covers` holds from the
    rollups and late_events, the others from `raw` (trends.sql over just their dates)."""
    tz = ZoneInfo(timezone)
    starts = sql.bucket_starts(q.interval, q.date_from, q.date_to, tz)
    range_start, range_end = sql.bounds(q.date_from, q.date_to, tz)
    # the part of each bucket inside the range (a week or month may begin before date_from)
    ends = [*starts[1:], range_end]
    starts, names = [max(s, range_start) for s in starts], starts
    covered = [False] * len(starts)
    if covers is not None and _whole_hours(q, starts):
        first, end = covers
        covered = [s >= first and e <= end for s, e in zip(starts, ends, strict=True)]
    QUERY_ROLLUP_BUCKETS.labels("rollup").inc(sum(covered))
    QUERY_ROLLUP_BUCKETS.labels("raw").inc(len(covered) - sum(covered))
    rows: dict[str, int] = {}
    if any(covered):
        span = [i for i, c in enumerate(covered) if c]
        rows = await _from_rollups(run, q, series, project_id, tz, starts[span[0]], ends[span[-1]])
    missing = [i for i, c in enumerate(covered) if not c]
    if missing:
        day_from = starts[missing[0]].date()
        day_to = min(q.date_to, (ends[missing[-1]] - timedelta(microseconds=1)).date())
        part = dataclasses.replace(q, date_from=day_from, date_to=day_to)
        wanted = {label(names[i], q.interval) for i in missing}
        for row in await raw(part, series):
            name = label(bucket_start(row["bucket"], tz), q.interval)
            if name in wanted:
                rows[name] = int(row[MEASURES[q.measure]])
    # each bucket as trends.sql returns it: an hour as epoch seconds, else the local date
    bucket = {
        label(s, q.interval): int(s.timestamp()) if q.interval == "hour" else s.date().isoformat()
        for s in names
    }
    column = MEASURES[q.measure]
    return [{"bucket": bucket[name], "breakdown_value": "", "events": 0, "persons": 0, column: n}
            for name, n in rows.items()]  # fmt: skip


async def _from_rollups(
    run: Run, q: TrendsQuery, series: Series, project_id: int, tz: ZoneInfo, start: datetime, end: datetime
) -> dict[str, int]:
    """Per bucket label in [start, end), the rollup count plus the late events (totals) or the distinct
    persons of both (uniques)."""
    params: dict[str, Any] = {"project_id": project_id, "event": series.event, "tz": str(tz)}
    if q.interval == "hour":
        params.update(span_start=start, span_end=end)
        fragments = {"rollup": "event_counts_1h", "bucket": "toUnixTimestamp(hour)",
                     "span": "hour >= {span_start:DateTime('UTC')} AND hour < {span_end:DateTime('UTC')}"}  # fmt: skip
    else:
        first_day = max(q.date_from, start.date())
        last_day = min(q.date_to, (end - timedelta(microseconds=1)).date())
        params.update(day_from=first_day, day_to=last_day)
        range_start, range_end = sql.bounds(q.date_from, q.date_to, tz)
        start, end = max(start, range_start), min(end, range_end)
        fragments = {"rollup": "event_counts_1d", "bucket": DAY_BUCKETS[q.interval],
                     "span": "local_day >= {day_from:Date} AND local_day <= {day_to:Date}"}  # fmt: skip
    params.update(start=start, end=end)
    counted: dict[str, int] = {}
    if q.measure == "uniques":
        fragments.update(late_bucket=LATE_BUCKETS[q.interval], **sql.after_merges())
        for row in await run(sql.statement("rollup_uniques.sql", fragments), params):
            counted[_label(row["bucket"], q.interval, tz)] = int(row["persons"])
        return counted
    for row in await run(sql.statement("rollup_totals.sql", fragments), params):
        name = _label(row["bucket"], q.interval, tz)
        counted[name] = counted.get(name, 0) + int(row["events"])
    late = sql.statement("late_totals.sql", {"bucket": INTERVALS[q.interval]})
    for row in await run(late, params):
        name = label(bucket_start(row["bucket"], tz), q.interval)
        counted[name] = counted.get(name, 0) + int(row["events"])
    return counted


def _label(bucket: object, interval: str, tz: ZoneInfo) -> str:
    if isinstance(bucket, date) and not isinstance(bucket, datetime):
        bucket = bucket.isoformat()
    return label(bucket_start(bucket, tz), interval)


def _whole_hours(q: TrendsQuery, starts: list[datetime]) -> bool:
    """UTC hours are the zone's hours only where its offset is whole hours (not +05:30)."""
    if q.interval != "hour":
        return True
    return all(int(s.utcoffset().total_seconds()) % 3600 == 0 for s in starts)  # type: ignore[union-attr]


def _utc(value: object) -> datetime:
    """A DateTime('UTC') as the ClickHouse binding returns it (text or datetime) as an aware instant."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=ZoneInfo("UTC")) if moment.tzinfo is None else moment

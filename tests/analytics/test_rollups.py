"""Plain trends totals and uniques read the Flink job's rollups (event_counts_1h/1d) where they cover the buckets, raw
events elsewhere: both paths give the same numbers, and the rollups are really what answers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.analytics.support import RANGE_A, World
from workers.query import trends
from workers.query import trends_rollups as rollups

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]


class Recorder:
    def __init__(self, world: World) -> None:
        self.world, self.tables = world, []

    async def run(self, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.tables += re.findall(r"FROM (event_counts_1[hd]|late_events)\b", statement)
        return await self.world.ch.query(statement, params)

    async def raw(self, q: trends.TrendsQuery, series: trends.Series) -> list[dict[str, Any]]:
        self.tables.append("events")
        return await raw_rows(self.world, q, series)


async def raw_rows(world: World, q: trends.TrendsQuery, series: trends.Series) -> list[dict[str, Any]]:
    return await world.ch.query(*trends.sql_for(q, series, world.a.project.id, world.a.project.timezone))


def values(q: trends.TrendsQuery, rows: list[dict[str, Any]], timezone: str) -> tuple[list[str], list[float]]:
    return trends.series_values(q, rows, timezone)


@pytest.mark.parametrize(
    "body, tables",
    [
        ({"interval": "day", **RANGE_A}, ["event_counts_1d", "late_events"]),
        ({"interval": "hour", "date_from": "2026-11-01", "date_to": "2026-11-02"}, ["event_counts_1h", "late_events"]),
        ({"interval": "week", "date_from": "2026-10-21", "date_to": "2026-11-10"}, ["event_counts_1d", "late_events"]),
        ({"interval": "month", "date_from": "2026-10-20", "date_to": "2026-11-10"}, ["event_counts_1d", "late_events"]),
        # the data starts on 2026-10-19 04:00 UTC: the first days and the days after the last minute are raw
        ({"interval": "day", "date_from": "2026-10-17", "date_to": "2026-11-30"},
         ["event_counts_1d", "late_events", "events"]),
        ({"interval": "hour", "date_from": "2026-11-11", "date_to": "2026-11-12"}, ["event_counts_1h", "late_events", "events"]),
    ],
    ids=["day", "hour-dst", "week", "month", "day-beyond-both-ends", "hour-past-the-end"],
)  # fmt: skip
@pytest.mark.parametrize("measure", ["totals", "uniques"])
async def test_rollups_equal_raw_events(
    world: World, body: dict[str, Any], tables: list[str], measure: str
) -> None:
    events = [{"event": "$pageview"}, {"event": "purchase"}]
    q = trends.parse({"events": events, "measure": measure, **body})
    project = world.a.project
    for series in q.series:
        assert rollups.applies(q, series)
        recorder = Recorder(world)
        covers = await rollups.coverage(recorder.run, project.id)
        got = await rollups.totals(
            recorder.run, recorder.raw, q, series, project.id, project.timezone, covers
        )
        expected = values(q, await raw_rows(world, q, series), project.timezone)
        assert values(q, got, project.timezone) == expected
        assert sum(expected[1]) > 0
        assert sorted(set(recorder.tables)) == sorted(tables)


def test_only_plain_totals_and_uniques_read_the_rollups() -> None:
    base = {"events": [{"event": "$pageview"}], **RANGE_A}
    for measure in ("totals", "uniques"):
        plain = trends.parse({**base, "measure": measure})
        assert rollups.applies(plain, plain.series[0])
    for other in (
        {**base, "measure": "average"},
        {**base, "measure": "uniques", "breakdown": {"property": "$browser"}},
        {**base, "measure": "totals", "breakdown": {"property": "$browser"}},
        {**base, "measure": "totals", "events": [{"event": "$pageview", "filters": [{"property": "plan", "op": "is_set"}]}]},
    ):  # fmt: skip
        q = trends.parse(other)
        assert not rollups.applies(q, q.series[0])


async def test_the_buckets_counted_from_rollups_are_on_metrics(world: World) -> None:
    def buckets(source: str) -> float:
        return REGISTRY.get_sample_value("ua_query_rollup_buckets_total", {"source": source}) or 0.0

    q = trends.parse({"events": [{"event": "$pageview"}], "measure": "totals", "interval": "day", **RANGE_A})
    before = buckets("rollup"), buckets("raw")
    recorder, project = Recorder(world), world.a.project
    covers = await rollups.coverage(recorder.run, project.id)
    await rollups.totals(recorder.run, recorder.raw, q, q.series[0], project.id, project.timezone, covers)
    assert (buckets("rollup") - before[0], buckets("raw") - before[1]) == (14, 0)

"""Trends on project A (America/New_York) equal the reference: every measure, interval, breakdown, filter."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bench.generate import HOSTILE_EVENT, HOSTILE_PROPERTY
from tests import reference
from tests.analytics.support import RANGE_A, World, assert_same, post

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
BUCKETED = ("uniques", "totals", "active_percent", "average", "sum", "avg")
RANGES = {  # each interval over a range that holds the DST change of 2026-11-01
    "hour": {"date_from": "2026-10-31", "date_to": "2026-11-01"},
    "day": RANGE_A,
    "week": {"date_from": "2026-10-28", "date_to": "2026-11-10"},  # a Wednesday: weeks start 2026-10-26
    "month": {"date_from": "2026-10-20", "date_to": "2026-11-10"},
}


async def check(client: TestClient, world: World, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await post(client, "/api/trends", world.a.key, body)
    assert status == 200, answer
    assert_same(answer, reference.trends(world.a.ref, body))
    return answer


@pytest.mark.parametrize("interval", list(RANGES))
@pytest.mark.parametrize("measure", BUCKETED)
async def test_bucketed_measures_for_every_interval(
    client: TestClient, world: World, measure: str, interval: str
) -> None:
    body = {"events": [{"event": "purchase"}], "measure": measure, "property": "amount", "interval": interval,
            **RANGES[interval]}  # fmt: skip
    await check(client, world, body)


async def test_hourly_buckets_are_instants_across_the_autumn_dst_change(
    client: TestClient, world: World
) -> None:
    body = {"events": [{"event": "$pageview"}], "measure": "totals", "interval": "hour",
            "date_from": "2026-11-01", "date_to": "2026-11-01"}  # fmt: skip
    [series] = (await check(client, world, body))["series"]
    assert len(series["labels"]) == 25, "New York's 1 November 2026 has 25 hours"
    assert series["labels"][1:3] == ["2026-11-01T01:00-04:00", "2026-11-01T01:00-05:00"]
    assert all(series["values"][1:3]), "both 01:00 hours hold events"


async def test_week_and_month_buckets_start_at_the_one_holding_date_from(
    client: TestClient, world: World
) -> None:
    week = await check(
        client, world, {"events": [{"event": "$pageview"}], "interval": "week", **RANGES["week"]}
    )
    assert week["series"][0]["labels"] == ["2026-10-26", "2026-11-02", "2026-11-09"]
    month = await check(
        client, world, {"events": [{"event": "$pageview"}], "interval": "month", **RANGES["month"]}
    )
    assert month["series"][0]["labels"] == ["2026-10-01", "2026-11-01"]


@pytest.mark.parametrize(
    "item",
    [
        {"event": "$pageview"},
        {"event": "purchase", "filters": [{"property": "plan", "op": "eq", "value": "pro"}]},
        {
            "event": "signed_up",
            "filters": [{"type": "person", "property": "tier", "op": "eq", "value": "gold"}],
        },
    ],
)
async def test_frequency_counts_persons_by_times_in_the_range(
    client: TestClient, world: World, item: dict[str, Any]
) -> None:
    answer = await check(client, world, {"events": [item], "measure": "frequency", **RANGE_A})
    assert answer["series"][0]["labels"] == [*map(str, range(1, 10)), "10+"]
    assert answer["series"][0]["values"][-1] > 0, "some persons did it 10 times or more"


@pytest.mark.parametrize("prop", ["plan", "$current_url", "amount", HOSTILE_PROPERTY])
async def test_distribution_of_a_property_json_text(client: TestClient, world: World, prop: str) -> None:
    body = {"events": [{"event": "$pageview"}], "measure": "distribution", "property": prop, **RANGE_A}
    answer = await check(client, world, body)
    assert answer["series"][0]["labels"], "the property has values"


@pytest.mark.parametrize(
    ("measure", "breakdown"),
    [
        ("uniques", {"type": "event", "property": "plan", "limit": 2}),
        ("totals", {"type": "event", "property": "$browser", "limit": 10}),
        ("average", {"type": "event", "property": HOSTILE_PROPERTY, "limit": 3}),
        ("uniques", {"type": "person", "property": "tier", "limit": 3}),
        ("active_percent", {"type": "person", "property": "tier", "limit": 2}),
        ("sum", {"type": "event", "property": "$pathname", "limit": 4}),
        ("totals", {"type": "event", "property": "amount", "limit": 5}),  # numbers break down by their text
        ("uniques", {"type": "person", "property": "score", "limit": 5}),
    ],
)
async def test_breakdowns_take_the_values_with_most_events(
    client: TestClient, world: World, measure: str, breakdown: dict[str, Any]
) -> None:
    body = {"events": [{"event": "$pageview"}], "measure": measure, "property": "amount", "breakdown": breakdown,
            **RANGE_A}  # fmt: skip
    answer = await check(client, world, body)
    assert 2 <= len(answer["series"]) <= breakdown["limit"]


async def test_person_breakdown_counts_personless_persons_under_the_empty_value(
    client: TestClient, world: World
) -> None:
    body = {"events": [{"event": "$pageview"}], "breakdown": {"type": "person", "property": "tier", "limit": 4},
            **RANGE_A}  # fmt: skip
    answer = await check(client, world, body)
    assert {s["breakdown_value"] for s in answer["series"]} == {"gold", "silver", "bronze", ""}


EVENT_FILTERS = [
    [{"property": "plan", "op": "eq", "value": "pro"}],
    [{"property": "plan", "op": "neq", "value": "pro"}],
    [{"property": "amount", "op": "eq", "value": 42}],
    [{"property": "amount", "op": "neq", "value": "42"}],
    [{"property": "amount", "op": "gt", "value": 400}],
    [{"property": "amount", "op": "gte", "value": 250.0}],
    [{"property": "amount", "op": "lt", "value": 10}],
    [{"property": "amount", "op": "lte", "value": 10}],
    [{"property": "$current_url", "op": "contains", "value": "drop TABLE"}],
    [{"property": "$pathname", "op": "contains", "value": "PRODUCTS"}],
    [{"property": "plan", "op": "in", "value": ["free", "team"]}],
    [{"property": "amount", "op": "in", "value": [1, 2, 3, "4"]}],
    [{"property": "amount", "op": "is_set"}],
    [{"property": "amount", "op": "is_not_set"}],
    [{"property": "$current_url", "op": "eq", "value": "https://shop.example/'; DROP TABLE events; --"}],
    [{"property": HOSTILE_PROPERTY, "op": "eq", "value": "x'y"}],
    [{"property": "$session_id", "op": "is_set"}, {"property": "$browser", "op": "eq", "value": "Safari"}],
]


PERSON_FILTERS = [
    [{"type": "person", "property": "tier", "op": "eq", "value": "gold"}],
    [{"type": "person", "property": "tier", "op": "neq", "value": "gold"}],
    [{"type": "person", "property": "tier", "op": "in", "value": ["silver", "bronze"]}],
    [{"type": "person", "property": "tier", "op": "is_not_set"}],  # personless persons
    [{"type": "person", "property": "score", "op": "gte", "value": 50}],
    [{"type": "person", "property": "score", "op": "lt", "value": 20},
     {"property": "plan", "op": "eq", "value": "team"}],
]  # fmt: skip


@pytest.mark.parametrize(
    ("filters", "measure"),
    [(f, "totals") for f in EVENT_FILTERS] + [(f, "uniques") for f in PERSON_FILTERS],
    ids=lambda v: "+".join(f"{x.get('type', 'event')}-{x['op']}" for x in v) if isinstance(v, list) else v,
)
async def test_filters_on_event_and_current_person_properties(
    client: TestClient, world: World, filters: list[dict[str, Any]], measure: str
) -> None:
    body = {"events": [{"event": "$pageview", "filters": filters}], "measure": measure, **RANGE_A}
    answer = await check(client, world, body)
    assert sum(answer["series"][0]["values"]) > 0, "the filter keeps some events"


@pytest.mark.parametrize("measure", ["totals", "active_percent", "uniques"])
async def test_several_events_in_one_request(client: TestClient, world: World, measure: str) -> None:
    events = [{"event": "$pageview"}, {"event": "purchase", "filters": [{"property": "plan", "op": "eq",
              "value": "pro"}]}, {"event": "signed_up"}]  # fmt: skip
    answer = await check(client, world, {"events": events, "measure": measure, **RANGE_A})
    assert [s["event"] for s in answer["series"]] == ["$pageview", "purchase", "signed_up"]


async def test_several_events_with_a_breakdown_give_a_series_per_event_and_value(
    client: TestClient, world: World
) -> None:
    body = {"events": [{"event": "signed_up"}, {"event": "purchase"}], "measure": "uniques",
            "breakdown": {"type": "event", "property": "plan", "limit": 2}, **RANGE_A}  # fmt: skip
    answer = await check(client, world, body)
    assert [s["event"] for s in answer["series"]] == ["signed_up", "signed_up", "purchase", "purchase"]


async def test_the_hostile_event_name_is_data(client: TestClient, world: World) -> None:
    body = {"events": [{"event": HOSTILE_EVENT}], "measure": "totals", **RANGE_A}
    answer = await check(client, world, body)
    assert sum(answer["series"][0]["values"]) > 0


async def test_numeric_comparisons_leave_string_values_out(client: TestClient, world: World) -> None:
    body = {"events": [{"event": "$pageview", "filters": [{"property": "plan", "op": "lt", "value": 1}]}],
            "measure": "totals", **RANGE_A}  # fmt: skip
    assert sum(reference.trends(world.a.ref, body)["series"][0]["values"]) == 0
    await check(client, world, body)

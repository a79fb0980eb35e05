"""Stickiness and lifecycle equal the reference on both projects (A crosses the DST change): every
interval, several events, event and person filters, ranges reaching before the data and past it."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bench.generate import HOSTILE_EVENT, HOSTILE_PROPERTY
from tests import reference
from tests.analytics.support import RANGE_A, RANGE_B, Side, World, assert_same, post

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
RANGES = {  # the data runs from 2026-10-19 to 2026-11-11
    "day": RANGE_A,
    "week": {"date_from": "2026-10-28", "date_to": "2026-11-10"},  # a Wednesday: weeks start 2026-10-26
    "month": {"date_from": "2026-10-20", "date_to": "2026-11-10"},
}
OUTSIDE = {  # reaching before the data and past it
    "day": {"date_from": "2026-10-10", "date_to": "2026-11-20"},
    "week": {"date_from": "2026-10-01", "date_to": "2026-11-30"},
    "month": {"date_from": "2026-08-15", "date_to": "2026-12-31"},
}
PRO = {"property": "plan", "op": "eq", "value": "pro"}
GOLD = {"type": "person", "property": "tier", "op": "eq", "value": "gold"}
SCORE = {"type": "person", "property": "score", "op": "gte", "value": 50}


def side(world: World, project: str) -> Side:
    return world.a if project == "a" else world.b


async def check(client: TestClient, world: World, project: str, path: str, body: dict[str, Any]) -> Any:
    status, answer = await post(client, path, side(world, project).key, body)
    assert status == 200, answer
    compute = reference.stickiness if path == "/api/stickiness" else reference.lifecycle
    assert_same(answer, compute(side(world, project).ref, body))
    return answer


@pytest.mark.parametrize("project", ["a", "b"])
@pytest.mark.parametrize("interval", list(RANGES))
async def test_stickiness_of_several_events(
    client: TestClient, world: World, project: str, interval: str
) -> None:
    events = [{"event": "$pageview"}, {"event": "purchase", "filters": [PRO]}, {"event": "signed_up"}]
    answer = await check(client, world, project, "/api/stickiness",
                         {"events": events, "interval": interval, **RANGES[interval]})  # fmt: skip
    assert [s["event"] for s in answer["series"]] == ["$pageview", "purchase", "signed_up"]
    pageviews = answer["series"][0]
    assert pageviews["labels"] == [str(k) for k in range(1, len(pageviews["labels"]) + 1)]
    assert pageviews["values"][0] > 0 and pageviews["values"][-1] > 0, "some came once, some every interval"


async def test_stickiness_counts_the_partial_intervals_at_both_ends(client: TestClient, world: World) -> None:
    body = {"events": [{"event": "$pageview"}], "interval": "week", **RANGES["week"]}
    answer = await check(client, world, "a", "/api/stickiness", body)
    assert answer["series"][0]["labels"] == ["1", "2", "3"], "weeks of 2026-10-26, 11-02 and 11-09"


@pytest.mark.parametrize(
    "filters",
    [[GOLD], [SCORE, PRO], [{"property": "$browser", "op": "eq", "value": "Safari"}],
     [{"type": "person", "property": "tier", "op": "is_not_set"}]],
    ids=["person", "person+event", "hot-event", "personless"],
)  # fmt: skip
async def test_stickiness_with_event_and_person_filters(
    client: TestClient, world: World, filters: list[dict[str, Any]]
) -> None:
    body = {"events": [{"event": "$pageview", "filters": filters}], "interval": "day", **RANGE_A}
    answer = await check(client, world, "a", "/api/stickiness", body)
    assert sum(answer["series"][0]["values"]) > 0, "the filters keep some persons"


@pytest.mark.parametrize("interval", list(OUTSIDE))
async def test_stickiness_over_ranges_wider_than_the_data(
    client: TestClient, world: World, interval: str
) -> None:
    body = {"events": [{"event": "purchase"}], "interval": interval, **OUTSIDE[interval]}
    answer = await check(client, world, "a", "/api/stickiness", body)
    values = answer["series"][0]["values"]
    assert sum(values) > 0 and values[-1] == 0, "nobody is active in the intervals without data"


@pytest.mark.parametrize("project", ["a", "b"])
@pytest.mark.parametrize("interval", list(RANGES))
@pytest.mark.parametrize("event", ["$pageview", "purchase"])
async def test_lifecycle(client: TestClient, world: World, project: str, interval: str, event: str) -> None:
    body = {"event": event, "interval": interval, **RANGES[interval]}
    answer = await check(client, world, project, "/api/lifecycle", body)
    assert answer["labels"] == reference.trends(side(world, project).ref, {
        "events": [{"event": event}], "interval": interval, **RANGES[interval]})["series"][0]["labels"]  # fmt: skip
    assert all(v <= 0 for v in answer["dormant"]) and any(answer["dormant"])
    assert any(answer["returning"]) and any(answer["resurrecting"] if interval == "day" else answer["new"])


async def test_lifecycle_first_interval_is_decided_by_the_events_before_it(
    client: TestClient, world: World
) -> None:
    body = {"event": "$pageview", "interval": "day", "date_from": "2026-10-30", "date_to": "2026-11-03"}
    answer = await check(client, world, "a", "/api/lifecycle", body)
    assert answer["dormant"][0] < 0 and answer["returning"][0] > 0 and answer["resurrecting"][0] > 0


@pytest.mark.parametrize("interval", list(OUTSIDE))
async def test_lifecycle_over_ranges_wider_than_the_data(
    client: TestClient, world: World, interval: str
) -> None:
    body = {"event": "$pageview", "interval": interval, **OUTSIDE[interval]}
    answer = await check(client, world, "a", "/api/lifecycle", body)
    statuses = ("new", "returning", "resurrecting", "dormant")
    assert [answer[s][0] for s in statuses] == [0, 0, 0, 0], "the first interval is before the data"
    assert [answer[s][-1] for s in statuses[:3]] == [0, 0, 0], "the last interval is after it"
    assert sum(answer["new"]) > 0


@pytest.mark.parametrize(
    "filters", [[GOLD], [SCORE, PRO], [{"property": "$browser", "op": "eq", "value": "Safari"}]],
    ids=["person", "person+event", "hot-event"],
)  # fmt: skip
async def test_lifecycle_with_event_and_person_filters(
    client: TestClient, world: World, filters: list[dict[str, Any]]
) -> None:
    body = {"event": "purchase", "filters": filters, "interval": "week", **RANGES["week"]}
    answer = await check(client, world, "a", "/api/lifecycle", body)
    assert sum(answer["new"]) > 0


async def test_project_b_has_its_own_event(client: TestClient, world: World) -> None:
    body = {"event": "invited_friend", "interval": "day", **RANGE_B}
    answer = await check(client, world, "b", "/api/lifecycle", body)
    assert sum(answer["new"]) > 0


async def test_hostile_names_and_values_are_data(client: TestClient, world: World) -> None:
    filters = [{"property": HOSTILE_PROPERTY, "op": "neq", "value": "x'y"}]
    body = {"events": [{"event": HOSTILE_EVENT, "filters": filters}], "interval": "day", **RANGE_A}
    assert sum((await check(client, world, "a", "/api/stickiness", body))["series"][0]["values"]) > 0
    body = {"event": HOSTILE_EVENT, "filters": filters, "interval": "day", **RANGE_A}
    assert sum((await check(client, world, "a", "/api/lifecycle", body))["new"]) > 0


STICKINESS = {"events": [{"event": "$pageview"}], "interval": "day", **RANGE_A}
LIFECYCLE = {"event": "$pageview", "interval": "day", **RANGE_A}
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("/api/stickiness", {"events": []}, "events"),
    ("/api/stickiness", {"events": [{"event": "$pageview"}] * 11}, "events"),
    ("/api/stickiness", {"events": [{"event": 5}]}, "events[0].event"),
    ("/api/stickiness", {"events": [{"event": "$pageview", "filters": [{**PRO, "op": "like"}]}]},
     "events[0].filters[0].op"),
    ("/api/stickiness", {"interval": "hour"}, "interval"),
    ("/api/stickiness", {"interval": "fortnight"}, "interval"),
    ("/api/stickiness", {"date_from": "2025-10-31", "date_to": "2026-11-01"}, "date_from..date_to"),
    ("/api/stickiness", {"date_to": "2026-10-01"}, "date_to"),
    ("/api/lifecycle", {"event": None}, "event"),
    ("/api/lifecycle", {"event": ""}, "event"),
    ("/api/lifecycle", {"interval": "hour"}, "interval"),
    ("/api/lifecycle", {"filters": {"plan": "pro"}}, "lifecycle.filters"),
    ("/api/lifecycle", {"filters": [{**PRO, "type": "group"}]}, "lifecycle.filters[0].type"),
    ("/api/lifecycle", {"date_from": "yesterday"}, "date_from"),
    ("/api/lifecycle", {"date_from": "2025-10-31", "date_to": "2026-11-01"}, "date_from..date_to"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "change", "field"), BAD, ids=[f"{p[5:]}-{f}" for p, _, f in BAD])
async def test_a_bad_field_is_400_naming_it(
    client: TestClient, world: World, path: str, change: dict[str, Any], field: str
) -> None:
    base = STICKINESS if path == "/api/stickiness" else LIFECYCLE
    status, answer = await post(client, path, world.a.key, {**base, **change})
    assert status == 400 and answer["code"] == "invalid_request", answer
    assert answer["detail"].startswith(f"{field}:"), answer


@pytest.mark.parametrize(
    ("path", "change", "code", "field", "name"),
    [("/api/stickiness", {"events": [{"event": "$pageview"}, {"event": "never-sent"}]}, "unknown_event",
      "events[1].event", "never-sent"),
     ("/api/lifecycle", {"event": "invited_friend"}, "unknown_event", "event", "invited_friend"),
     ("/api/lifecycle", {"filters": [{"property": "never-sent", "op": "is_set"}]}, "unknown_property",
      "lifecycle.filters[0].property", "never-sent")],
)  # fmt: skip
async def test_an_unknown_name_is_400_naming_field_and_name(
    client: TestClient, world: World, path: str, change: dict[str, Any], code: str, field: str, name: str
) -> None:
    base = STICKINESS if path == "/api/stickiness" else LIFECYCLE
    status, answer = await post(client, path, world.a.key, {**base, **change})
    assert status == 400 and answer["code"] == code, answer
    assert field in answer["detail"] and f"'{name}'" in answer["detail"], answer

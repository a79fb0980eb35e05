"""Funnels' complete options equal the reference on both projects (A across a DST change, B in UTC):
person-property step filters, a person breakdown, exclusions, the three step orders, the time-to-convert
histogram; and each new field's bad values are a 400 naming it."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests import reference
from tests.analytics.support import RANGE_A, RANGE_B, Side, World, assert_same, post

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
TWO, THREE = ["$pageview", "signed_up"], ["$pageview", "signed_up", "purchase"]
REPEATED_TWO, REPEATED_THREE = ["$pageview", "$pageview"], ["$autocapture", "$pageview", "$autocapture"]
GOLD = {"type": "person", "property": "tier", "op": "eq", "value": "gold"}
PRICING, CHECKOUT = ({"property": "$pathname", "op": "eq", "value": p} for p in ("/pricing", "/checkout"))
Steps = list[str] | list[dict[str, Any]]


def side_of(world: World, name: str) -> tuple[Side, dict[str, str]]:
    return (world.a, RANGE_A) if name == "a" else (world.b, RANGE_B)


def body_of(steps: Steps, window: int, dates: dict[str, str], **more: Any) -> dict[str, Any]:
    """A funnel of event names, or of {event, filters} steps."""
    steps = [{"event": s} if isinstance(s, str) else s for s in steps]
    return {"steps": steps, "window_seconds": window, **dates, **more}


async def check(client: TestClient, side: Side, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await post(client, "/api/funnels", side.key, body)
    assert status == 200, answer
    assert_same(answer, reference.funnels(side.ref, body))
    return answer


def counts(answer: dict[str, Any]) -> list[int]:
    return [s["count"] for s in answer["steps"]]


PERSON_STEPS = [
    pytest.param([{"event": "$pageview", "filters": [GOLD]}, {"event": "signed_up"}], id="step-1-gold"),
    pytest.param([{"event": "$pageview"}, {"event": "signed_up", "filters": [
        {"type": "person", "property": "score", "op": "gte", "value": 50}]}, {"event": "purchase"}], id="step-2-score"),
    pytest.param([{"event": "$pageview", "filters": [{"property": "$browser", "op": "eq", "value": "Chrome"},
                  {"type": "person", "property": "tier", "op": "in", "value": ["silver", "bronze"]}]},
                  {"event": "purchase", "filters": [{"type": "person", "property": "score", "op": "lt", "value": 70}]}],
                 id="event-and-person"),
]  # fmt: skip


@pytest.mark.parametrize("name", ["a", "b"])
@pytest.mark.parametrize("steps", PERSON_STEPS)
async def test_person_property_step_filters(
    client: TestClient, world: World, name: str, steps: list[dict[str, Any]]
) -> None:
    side, dates = side_of(world, name)
    answer = await check(client, side, {"steps": steps, "window_seconds": 86400, **dates})
    plain = await check(client, side, {"steps": [{"event": s["event"]} for s in steps], "window_seconds": 86400,
                                       **dates})  # fmt: skip
    assert 0 < counts(answer)[-1] and counts(answer) != counts(plain)


@pytest.mark.parametrize("name", ["a", "b"])
@pytest.mark.parametrize(("steps", "limit"), [(TWO, 3), (THREE, 2)])
async def test_breakdown_by_a_person_property(
    client: TestClient, world: World, name: str, steps: list[str], limit: int
) -> None:
    side, dates = side_of(world, name)
    breakdown = {"type": "person", "property": "tier", "limit": limit}
    answer = await check(client, side, body_of(steps, 86400, dates, breakdown=breakdown))
    values = [b["breakdown_value"] for b in answer["breakdowns"]]
    assert len(values) == limit and set(values) <= {"gold", "silver", "bronze", ""}
    # every person is under one value: with all values listed, the counts add up to the totals
    everyone = await check(client, side, body_of(steps, 86400, dates, breakdown={**breakdown, "limit": 10}))
    for k, step in enumerate(everyone["steps"]):
        assert step["count"] == sum(b["steps"][k]["count"] for b in everyone["breakdowns"])


EXCLUSIONS = [
    pytest.param(THREE, [{"event": "$autocapture", "from_step": 1, "to_step": 2}], id="between-1-2"),
    pytest.param(THREE, [{"event": "$pageview", "from_step": 2, "to_step": 3}], id="a-step-event-2-3"),
    pytest.param(THREE, [{"event": "$pageview", "filters": [{"property": "$pathname", "op": "eq", "value": "/pricing"}],
                          "from_step": 1, "to_step": 3}], id="filtered-1-3"),
    pytest.param(TWO, [{"event": "purchase", "from_step": 1, "to_step": 2},
                       {"event": "$autocapture", "filters": [GOLD], "from_step": 1, "to_step": 2}], id="two-exclusions"),
    pytest.param([{"event": "$pageview", "filters": [PRICING]}, {"event": "$pageview", "filters": [CHECKOUT]}],
                 [{"event": "$pageview", "from_step": 1, "to_step": 2}], id="same-event-other-filters"),
]  # fmt: skip


@pytest.mark.parametrize("name", ["a", "b"])
@pytest.mark.parametrize("window", [600, 3600, 86400])
@pytest.mark.parametrize(("steps", "exclusions"), EXCLUSIONS)
async def test_exclusions(
    client: TestClient, world: World, name: str, window: int, steps: Steps, exclusions: list[dict[str, Any]]
) -> None:
    """Chains reaching to_step (the exclusion event before it) and not reaching it (before the window's end)."""
    side, dates = side_of(world, name)
    answer = await check(client, side, body_of(steps, window, dates, exclusions=exclusions))
    plain = await check(client, side, body_of(steps, window, dates))
    got, without = counts(answer), counts(plain)
    assert got[-1] > 0 and all(g <= w for g, w in zip(got, without, strict=True)) and got != without


@pytest.mark.parametrize("name", ["a", "b"])
@pytest.mark.parametrize("order", ["ordered", "strict", "unordered"])
@pytest.mark.parametrize(("steps", "window"), [(TWO, 3600), (THREE, 86400), (REPEATED_TWO, 60),
                                               (REPEATED_THREE, 600), (["purchase", "$pageview"], 3600)])  # fmt: skip
async def test_step_orders(
    client: TestClient, world: World, name: str, order: str, steps: list[str], window: int
) -> None:
    side, dates = side_of(world, name)
    answer = await check(client, side, body_of(steps, window, dates, order=order))
    ordered = await check(client, side, body_of(steps, window, dates))
    assert counts(answer)[-1] > 0
    if order == "strict":
        assert counts(answer)[1:] <= counts(ordered)[1:]
    if order == "unordered" and len(set(steps)) == len(steps):  # each ordered chain is an unordered one
        assert all(u >= o for u, o in zip(counts(answer)[1:], counts(ordered)[1:], strict=True))


async def test_unordered_and_strict_with_filters_exclusions_and_breakdown(
    client: TestClient, world: World
) -> None:
    steps = [{"event": "signed_up", "filters": [GOLD]}, {"event": "$pageview"}, {"event": "purchase"}]
    for order in ("strict", "unordered"):
        body = {"steps": steps, "window_seconds": 86400, "order": order, **RANGE_A,
                "exclusions": [{"event": "$autocapture", "from_step": 2, "to_step": 3}],
                "breakdown": {"type": "event", "property": "plan", "limit": 3},
                "histogram": {"from_step": 1, "to_step": 2, "bins": 5}}  # fmt: skip
        answer = await check(client, world.a, body)
        assert len(answer["breakdowns"]) == 3 and answer["histogram"]["bins"]


@pytest.mark.parametrize("name", ["a", "b"])
@pytest.mark.parametrize(("steps", "first", "last", "bins"), [(TWO, 1, 2, 1), (TWO, 1, 2, 10), (THREE, 1, 3, 7),
                                                              (THREE, 2, 3, 90)])  # fmt: skip
async def test_time_to_convert_histogram(
    client: TestClient, world: World, name: str, steps: list[str], first: int, last: int, bins: int
) -> None:
    side, dates = side_of(world, name)
    histogram = {"from_step": first, "to_step": last, "bins": bins}
    breakdown = {"type": "person", "property": "tier", "limit": 3}
    answer = await check(client, side, body_of(steps, 86400, dates, histogram=histogram, breakdown=breakdown))
    got = answer["histogram"]
    assert (
        len(got["bins"]) == bins
        and sum(b["count"] for b in got["bins"]) == answer["steps"][last - 1]["count"]
    )
    assert got["bins"][-1]["count"] > 0 and all(b["histogram"]["bins"] for b in answer["breakdowns"])


async def test_an_empty_histogram(client: TestClient, world: World) -> None:
    steps = [{"event": "$pageview"}, {"event": "purchase", "filters": [{"property": "amount", "op": "gt",
                                                                         "value": 10**6}]}]  # fmt: skip
    body = {"steps": steps, "window_seconds": 3600, "histogram": {"from_step": 1, "to_step": 2}, **RANGE_A}
    answer = await check(client, world.a, body)
    assert answer["histogram"] == {"from_step": 1, "to_step": 2, "bins": [], "average_seconds": None,
                                   "median_seconds": None}  # fmt: skip


BASE = body_of(THREE, 3600, RANGE_A)
EXCLUSION = {"event": "$autocapture", "from_step": 1, "to_step": 2}
BAD = [
    ({"order": "sequential"}, "order"),
    ({"order": None}, "order"),
    ({"exclusions": {"event": "$autocapture"}}, "exclusions"),
    ({"exclusions": [EXCLUSION] * 6}, "exclusions"),
    ({"exclusions": [{**EXCLUSION, "event": ""}]}, "exclusions[0].event"),
    ({"exclusions": [{**EXCLUSION, "from_step": 0}]}, "exclusions[0].from_step"),
    ({"exclusions": [{**EXCLUSION, "to_step": 4}]}, "exclusions[0].to_step"),
    ({"exclusions": [{**EXCLUSION, "from_step": 2, "to_step": 2}]}, "exclusions[0].to_step"),
    ({"exclusions": [{**EXCLUSION, "from_step": "1"}]}, "exclusions[0].from_step"),
    ({"exclusions": [EXCLUSION, {**EXCLUSION, "event": "signed_up", "from_step": 2, "to_step": 3}]},
     "exclusions[1].event"),
    ({"exclusions": [{**EXCLUSION, "event": "$pageview"}]}, "exclusions[0].event"),
    ({"exclusions": [{**EXCLUSION, "filters": [{"property": "plan", "op": "like"}]}]}, "exclusions[0].filters[0].op"),
    ({"histogram": {"from_step": 1, "to_step": 3, "bins": 0}}, "histogram.bins"),
    ({"histogram": {"from_step": 1, "to_step": 3, "bins": 91}}, "histogram.bins"),
    ({"histogram": {"from_step": 1, "to_step": 3, "bins": 2.5}}, "histogram.bins"),
    ({"histogram": {"from_step": 3, "to_step": 1}}, "histogram.to_step"),
    ({"histogram": {"from_step": 1}}, "histogram.to_step"),
    ({"histogram": [1, 3]}, "histogram"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field"), BAD, ids=[f"{n}-{f}" for n, (_, f) in enumerate(BAD)])
async def test_a_bad_new_field_is_400_naming_it(
    client: TestClient, world: World, change: dict[str, Any], field: str
) -> None:
    status, answer = await post(client, "/api/funnels", world.a.key, {**BASE, **change})
    assert status == 400 and answer["code"] == "invalid_request", answer
    assert answer["detail"].startswith(f"{field}:"), answer


async def test_an_exclusion_event_the_project_never_used_is_400(client: TestClient, world: World) -> None:
    body = {**BASE, "exclusions": [{**EXCLUSION, "event": "never-sent"}]}
    status, answer = await post(client, "/api/funnels", world.a.key, body)
    assert (
        status == 400 and answer["code"] == "unknown_event" and "exclusions[0].event" in answer["detail"]
    ), answer

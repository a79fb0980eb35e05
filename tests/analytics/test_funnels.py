"""Funnels equal the reference: 2 and 3 steps, several windows, step filters, breakdowns, the medians."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pandas as pd
import pytest
from aiohttp.test_utils import TestClient

from bench.generate import HOSTILE_EVENT, HOSTILE_PROPERTY, Dataset, insert
from tests import reference
from tests.analytics.support import RANGE_A, Side, World, assert_same, post
from workers.projects import ensure_project
from workers.writer import DISTINCT_ID_COLUMNS, EVENT_COLUMNS, PERSON_COLUMNS

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
TWO, THREE = ["$pageview", "signed_up"], ["$pageview", "signed_up", "purchase"]


async def check(client: TestClient, side: Side, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await post(client, "/api/funnels", side.key, body)
    assert status == 200, answer
    assert_same(answer, reference.funnels(side.ref, body))
    return answer


@pytest.mark.parametrize(
    ("steps", "window"),
    [(TWO, 60), (TWO, 3600), (TWO, 86400), (THREE, 600), (THREE, 86400), (THREE, 7 * 86400)],
)
async def test_counts_conversions_and_medians(
    client: TestClient, world: World, steps: list[str], window: int
) -> None:
    answer = await check(client, world.a, {"steps": [{"event": s} for s in steps], "window_seconds": window,
                                           **RANGE_A})  # fmt: skip
    counts = [s["count"] for s in answer["steps"]]
    assert counts[-1] > 0 and counts == sorted(counts, reverse=True)
    assert answer["steps"][0]["median_seconds_from_previous"] is None
    assert all(s["median_seconds_from_previous"] > 0 for s in answer["steps"][1:])


async def test_later_steps_may_fall_after_date_to(client: TestClient, world: World) -> None:
    body = {"steps": [{"event": s} for s in THREE], "window_seconds": 3 * 86400,
            "date_from": "2026-11-01", "date_to": "2026-11-01"}  # fmt: skip
    answer = await check(client, world.a, body)
    # the later steps up to 3 days on: were they cut at date_to, the counts would be [579, 156, 55]
    assert [s["count"] for s in answer["steps"]] == [579, 238, 110]


STEP_FILTERS = [
    pytest.param([{"event": "$pageview", "filters": [{"property": "$pathname", "op": "eq", "value": "/pricing"}]},
                  {"event": "purchase", "filters": [{"property": "amount", "op": "gte", "value": 100}]}],
                 id="filtered-2"),
    pytest.param([{"event": "$pageview"}, {"event": "signed_up", "filters": [{"property": "plan", "op": "in",
                  "value": ["pro", "team"]}]}, {"event": "purchase", "filters": [{"property": "amount", "op": "is_set"}]}],
                 id="filtered-3"),
    pytest.param([{"event": "$pageview", "filters": [{"property": "$current_url", "op": "contains", "value": "drop"}]},
                  {"event": HOSTILE_EVENT}], id="hostile-step"),
    pytest.param([{"event": "$autocapture"}, {"event": "$pageview", "filters": [{"property": "$pathname", "op": "eq",
                  "value": "/checkout"}]}, {"event": "$autocapture"}], id="repeated-event"),
    pytest.param([{"event": "$autocapture"}, {"event": "$pageview", "filters": [{"property": "plan", "op": "eq",
                  "value": "free"}]}, {"event": "$autocapture"}], id="repeated-event-plain-filter"),
]  # fmt: skip


@pytest.mark.parametrize("steps", STEP_FILTERS)
async def test_step_filters(client: TestClient, world: World, steps: list[dict[str, Any]]) -> None:
    answer = await check(client, world.a, {"steps": steps, "window_seconds": 86400, **RANGE_A})
    assert answer["steps"][-1]["count"] > 0


@pytest.mark.parametrize(
    ("steps", "breakdown"),
    [
        (THREE, {"type": "event", "property": "plan", "limit": 2}),
        (TWO, {"type": "event", "property": "$browser", "limit": 10}),
        (TWO, {"type": "event", "property": HOSTILE_PROPERTY, "limit": 3}),
    ],
)
async def test_breakdown_by_the_first_step_events_property(
    client: TestClient, world: World, steps: list[str], breakdown: dict[str, Any]
) -> None:
    body = {
        "steps": [{"event": s} for s in steps],
        "window_seconds": 86400,
        "breakdown": breakdown,
        **RANGE_A,
    }
    answer = await check(client, world.a, body)
    assert 2 <= len(answer["breakdowns"]) <= breakdown["limit"]
    for k, step in enumerate(answer["steps"]):
        assert step["count"] >= sum(b["steps"][k]["count"] for b in answer["breakdowns"])


@pytest.fixture(scope="module")
async def tiny(world: World, pg_dsn: str) -> AsyncIterator[Side]:
    """A third project of two personless persons whose steps share a second: device-1 signs up half a
    second after its $pageview (12:00:00.2); device-2 purchases at 12:00:05.2 and signs up at 12:00:05.9."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    project = await ensure_project(pool, "same-second", api_token=f"ss-{uuid.uuid4().hex}")
    await pool.close()
    at = datetime(2026, 11, 3, 12, 0, 0, 200_000, tzinfo=UTC)
    steps = [("device-1", "$pageview", 0), ("device-1", "signed_up", 500), ("device-2", "$pageview", 0),
             ("device-2", "purchase", 5000), ("device-2", "signed_up", 5700)]  # fmt: skip
    person = {d: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{project.id}:{d}")) for d in ("device-1", "device-2")}
    events = pd.DataFrame(
        [(str(uuid.uuid4()), project.id, event, who, person[who], "{}", at + timedelta(milliseconds=ms), "{}",
          "", "", "", "web", "posthog", at, at) for who, event, ms in steps],
        columns=list(EVENT_COLUMNS),
    )  # fmt: skip
    data = Dataset(
        events, pd.DataFrame(columns=list(DISTINCT_ID_COLUMNS)), pd.DataFrame(columns=list(PERSON_COLUMNS))
    )
    await insert(world.ch, data)
    yield Side(project, data, reference.Events(data, project.id, "UTC"))


@pytest.mark.parametrize(("steps", "counts"), [(TWO, [2, 1]), (THREE, [2, 1, 1])])
async def test_steps_within_one_second_are_in_step_order_and_after_the_start_only(
    client: TestClient, tiny: Side, steps: list[str], counts: list[int]
) -> None:
    """device-1's signed_up shares its start's second: not counted. device-2's purchase and signed_up
    share a second: in step order, so device-2 completes the three steps."""
    body = {"steps": [{"event": s} for s in steps], "window_seconds": 60, "date_from": "2026-11-03",
            "date_to": "2026-11-03"}  # fmt: skip
    assert [s["count"] for s in reference.funnels(tiny.ref, body)["steps"]] == counts
    await check(client, tiny, body)

"""Retention equals the reference: daily and weekly cohorts, a named and the "$any" return event."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bench.generate import HOSTILE_EVENT
from tests import reference
from tests.analytics.support import RANGE_A, World, assert_same, post

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
DAYS = {"date_from": "2026-10-28", "date_to": "2026-11-03"}  # New York: the DST change on 2026-11-01


@pytest.mark.parametrize(
    "body",
    [
        {"start_event": "signed_up", "return_event": "purchase", "period": "day", "periods": 4, **DAYS},
        {"start_event": "$pageview", "return_event": "$any", "period": "day", "periods": 7, **DAYS},
        {"start_event": "signed_up", "return_event": "$any", "period": "week", "periods": 3, **RANGE_A},
        {"start_event": "$pageview", "return_event": "purchase", "period": "week", "periods": 2,
         "date_from": "2026-10-21", "date_to": "2026-11-04"},
        {"start_event": HOSTILE_EVENT, "return_event": HOSTILE_EVENT, "period": "day", "periods": 5, **DAYS},
        {"start_event": "purchase", "return_event": "$pageview", "period": "day", "periods": 1,
         "date_from": "2026-11-01", "date_to": "2026-11-01"},
    ],
    ids=["day-named", "day-any", "week-any", "week-named", "hostile-event", "one-day"],
)  # fmt: skip
async def test_cohort_matrix(client: TestClient, world: World, body: dict[str, Any]) -> None:
    status, answer = await post(client, "/api/retention", world.a.key, body)
    assert status == 200, answer
    assert_same(answer, reference.retention(world.a.ref, body))
    assert answer["cohorts"] and all(c["values"][0] == c["size"] for c in answer["cohorts"])
    assert all(len(c["values"]) == body["periods"] + 1 for c in answer["cohorts"])


async def test_weekly_cohorts_are_iso_weeks_from_monday(client: TestClient, world: World) -> None:
    body = {"start_event": "$pageview", "return_event": "$any", "period": "week", "periods": 1,
            "date_from": "2026-10-28", "date_to": "2026-11-08"}  # fmt: skip
    status, answer = await post(client, "/api/retention", world.a.key, body)
    assert status == 200, answer
    assert [c["date"] for c in answer["cohorts"]] == ["2026-10-26", "2026-11-02"]
    assert_same(answer, reference.retention(world.a.ref, body))

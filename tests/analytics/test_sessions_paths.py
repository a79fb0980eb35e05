"""Sessions (count, duration, bounce rate per bucket) and paths (edges over sessions) equal the reference."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bench.generate import HOSTILE_EVENT
from tests import reference
from tests.analytics.support import RANGE_A, World, assert_same, post

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]


@pytest.mark.parametrize(
    "body",
    [
        {"interval": "day", **RANGE_A},
        {"interval": "week", "date_from": "2026-10-28", "date_to": "2026-11-10"},
        {"interval": "hour", "date_from": "2026-11-01", "date_to": "2026-11-01"},
        {"interval": "month", "date_from": "2026-10-20", "date_to": "2026-11-10"},
        {"interval": "day", "filters": [{"property": "plan", "op": "eq", "value": "pro"}], **RANGE_A},
        {"interval": "week", "filters": [{"property": "$pathname", "op": "contains", "value": "product"}],
         "date_from": "2026-10-28", "date_to": "2026-11-10"},
        {"interval": "day", "filters": [{"property": "amount", "op": "gt", "value": 250},
                                        {"property": "$browser", "op": "neq", "value": "Chrome"}], **RANGE_A},
    ],
    ids=["day", "week", "hour-dst", "month", "day-filtered", "week-hot-filter", "day-two-filters"],
)  # fmt: skip
async def test_sessions_per_bucket(client: TestClient, world: World, body: dict[str, Any]) -> None:
    status, answer = await post(client, "/api/sessions", world.a.key, body)
    assert status == 200, answer
    assert_same(answer, reference.sessions(world.a.ref, body))
    assert sum(answer["sessions"]) > 0 and 0 < max(answer["bounce_rate"]) < 1


@pytest.mark.parametrize(
    "body",
    [
        {"steps": 4, "limit": 1000, **RANGE_A},
        {"start_event": "$pageview", "steps": 3, "limit": 20, **RANGE_A},
        {"start_event": "signed_up", "steps": 10, "limit": 1000, **RANGE_A},
        {"start_event": HOSTILE_EVENT, "steps": 5, "limit": 50, **RANGE_A},
        {
            "start_event": "purchase",
            "steps": 2,
            "limit": 5,
            "date_from": "2026-11-01",
            "date_to": "2026-11-01",
        },
    ],
    ids=[
        "from-first-event",
        "from-pageview",
        "from-signup-10-steps",
        "from-hostile-event",
        "two-steps-one-day",
    ],
)
async def test_paths_edges_count_sessions(client: TestClient, world: World, body: dict[str, Any]) -> None:
    status, answer = await post(client, "/api/paths", world.a.key, body)
    assert status == 200, answer
    assert_same(answer, reference.paths(world.a.ref, body))
    assert answer["edges"] and len(answer["edges"]) <= body["limit"]

"""Project B (UTC, its own rows, the same user-N distinct ids as A) sees only its own data everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests import reference
from tests.analytics.support import RANGE_B, World, all_pages, assert_same, post

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
TIER = [{"type": "person", "property": "tier", "op": "eq", "value": "gold"}]
REQUESTS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("/api/trends", reference.trends, {"events": [{"event": "$pageview"}], "measure": "uniques", **RANGE_B}),
    ("/api/trends", reference.trends, {"events": [{"event": "purchase", "filters": TIER}], "measure": "avg",
                                       "property": "amount", "interval": "week", **RANGE_B}),
    ("/api/trends", reference.trends, {"events": [{"event": "signed_up"}], "measure": "active_percent",
                                       "breakdown": {"type": "person", "property": "tier", "limit": 3}, **RANGE_B}),
    ("/api/trends", reference.trends, {"events": [{"event": "$pageview"}], "measure": "frequency", **RANGE_B}),
    ("/api/trends", reference.trends, {"events": [{"event": "purchase"}], "measure": "distribution",
                                       "property": "plan", **RANGE_B}),
    ("/api/trends", reference.trends, {"events": [{"event": "$pageview"}], "interval": "hour",
                                       "date_from": "2026-11-01", "date_to": "2026-11-01"}),
    ("/api/funnels", reference.funnels, {"steps": [{"event": "$pageview"}, {"event": "signed_up"},
                                                   {"event": "purchase"}], "window_seconds": 86400, **RANGE_B}),
    ("/api/funnels", reference.funnels, {"steps": [{"event": "$pageview"}, {"event": "purchase"}],
                                         "window_seconds": 3600,
                                         "breakdown": {"type": "event", "property": "plan", "limit": 3}, **RANGE_B}),
    ("/api/retention", reference.retention, {"start_event": "signed_up", "return_event": "$any", "period": "day",
                                             "periods": 5, **RANGE_B}),
    ("/api/retention", reference.retention, {"start_event": "$pageview", "return_event": "purchase",
                                             "period": "week", "periods": 2, **RANGE_B}),
    ("/api/sessions", reference.sessions, {"interval": "day", **RANGE_B}),
    ("/api/paths", reference.paths, {"start_event": "$pageview", "steps": 4, "limit": 100, **RANGE_B}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "compute", "body"), REQUESTS, ids=[f"{p}-{n}" for n, (p, _, _) in enumerate(REQUESTS)]
)
async def test_b_sees_its_own_data_only(
    client: TestClient, world: World, path: str, compute: Callable[..., Any], body: dict[str, Any]
) -> None:
    status, b = await post(client, path, world.b.key, body)
    assert status == 200, b
    assert_same(b, compute(world.b.ref, body))
    status, a = await post(client, path, world.a.key, body)
    assert status == 200 and a != b


async def test_events_of_a_shared_distinct_id_stay_in_their_project(client: TestClient, world: World) -> None:
    shared = sorted(set(world.a.ref.frame["distinct_id"]) & set(world.b.ref.frame["distinct_id"]))
    assert len(shared) > 1000, "the projects share most user-N (and anon-N, device-N) ids"
    params = {"distinct_id": shared[0], "limit": "50"}
    b = await all_pages(client, "/api/events", world.b.key, params)
    assert_same(b, reference.events(world.b.ref, distinct_ids=[shared[0]]))
    a = await all_pages(client, "/api/events", world.a.key, params)
    assert a and b and not {e["uuid"] for e in a} & {e["uuid"] for e in b}


async def test_an_event_only_b_sent_is_unknown_to_a(client: TestClient, world: World) -> None:
    body = {"events": [{"event": "invited_friend", "filters": [{"property": "invite_code", "op": "eq",
            "value": "inv-7"}]}], "measure": "totals", **RANGE_B}  # fmt: skip
    status, answer = await post(client, "/api/trends", world.b.key, body)
    assert status == 200 and sum(answer["series"][0]["values"]) > 0, answer
    assert_same(answer, reference.trends(world.b.ref, body))
    status, answer = await post(client, "/api/trends", world.a.key, body)
    assert status == 400 and answer["code"] == "unknown_event" and "events[0].event" in answer["detail"], (
        answer
    )
    body["events"][0]["event"] = "$pageview"
    status, answer = await post(client, "/api/trends", world.a.key, body)
    assert status == 400 and answer["code"] == "unknown_property", answer
    assert "events[0].filters[0].property" in answer["detail"] and "invite_code" in answer["detail"]

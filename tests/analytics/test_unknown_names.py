"""A name the project never sent is a 400 naming the field and the name: unknown_event, unknown_property."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.analytics.support import RANGE_A, World, post

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
NEVER = "never-sent"
PAGEVIEW = {"event": "$pageview"}
CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("/api/trends", {"events": [PAGEVIEW, {"event": NEVER}]}, "unknown_event", "events[1].event", NEVER),
    ("/api/trends", {"events": [{"event": "$pageview", "filters": [{"property": NEVER, "op": "is_set"}]}]},
     "unknown_property", "events[0].filters[0].property", NEVER),
    ("/api/trends", {"events": [{"event": "$pageview", "filters": [{"type": "person", "property": "plan",
     "op": "eq", "value": "pro"}]}]}, "unknown_property", "events[0].filters[0].property", "plan"),
    ("/api/trends", {"events": [PAGEVIEW], "breakdown": {"type": "person", "property": "$browser"}},
     "unknown_property", "breakdown.property", "$browser"),
    ("/api/trends", {"events": [PAGEVIEW], "breakdown": {"type": "event", "property": "tier"}},
     "unknown_property", "breakdown.property", "tier"),
    ("/api/trends", {"events": [PAGEVIEW], "measure": "sum", "property": NEVER}, "unknown_property", "property", NEVER),
    ("/api/funnels", {"steps": [PAGEVIEW, {"event": NEVER}], "window_seconds": 60}, "unknown_event", "steps[1].event",
     NEVER),
    ("/api/funnels", {"steps": [PAGEVIEW, {"event": "purchase", "filters": [{"property": NEVER, "op": "is_set"}]}],
      "window_seconds": 60}, "unknown_property", "steps[1].filters[0].property", NEVER),
    ("/api/funnels", {"steps": [PAGEVIEW, PAGEVIEW], "window_seconds": 60, "breakdown": {"property": NEVER}},
     "unknown_property", "breakdown.property", NEVER),
    ("/api/retention", {"start_event": NEVER, "return_event": "$any"}, "unknown_event", "start_event", NEVER),
    ("/api/retention", {"start_event": "signed_up", "return_event": NEVER}, "unknown_event", "return_event", NEVER),
    ("/api/paths", {"start_event": NEVER}, "unknown_event", "start_event", NEVER),
    ("/api/sessions", {"filters": [{"property": NEVER, "op": "eq", "value": "x"}]}, "unknown_property",
     "filters[0].property", NEVER),
    ("/api/trends", {"events": [{"event": "invited_friend"}]}, "unknown_event", "events[0].event", "invited_friend"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "code", "field", "name"), CASES,
                         ids=[f"{c[0][5:]}-{c[3]}-{c[4]}" for c in CASES])  # fmt: skip
async def test_an_unknown_name_is_400_naming_field_and_name(
    client: TestClient, world: World, path: str, body: dict[str, Any], code: str, field: str, name: str
) -> None:
    status, answer = await post(client, path, world.a.key, {**RANGE_A, **body})
    assert status == 400 and answer["code"] == code, answer
    assert field in answer["detail"] and f"'{name}'" in answer["detail"], answer


@pytest.mark.parametrize(
    "body",
    [{"start_event": "signed_up", "return_event": "$any", "period": "day", "periods": 2},
     {"steps": 3}],
)  # fmt: skip
async def test_any_event_and_no_start_event_are_not_names(
    client: TestClient, world: World, body: dict[str, Any]
) -> None:
    path = "/api/retention" if "start_event" in body else "/api/paths"
    status, answer = await post(client, path, world.a.key, {**RANGE_A, **body})
    assert status == 200, answer

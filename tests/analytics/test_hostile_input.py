"""Hostile strings in every string field are data: the right answer (200), or a 400 for an unknown name —
never a 5xx — and the tables are intact afterwards. Runs on project B (UTC)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiohttp.test_utils import TestClient

from bench.generate import HOSTILE_EVENT, HOSTILE_PROPERTY, HOSTILE_VALUES
from tests import reference
from tests.analytics.support import RANGE_B, World, assert_same, get, post

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
HOSTILE = [HOSTILE_EVENT, "\\' OR 1=1 --", "{project_id:UInt64}", "x\x00y", "ü\"'`\\", HOSTILE_PROPERTY, *HOSTILE_VALUES,
           "') OR ('1'='1", "%s; SELECT 1", "\n\t\r"]  # fmt: skip
PV = "$pageview"


def trends(**item: Any) -> Callable[[str], dict[str, Any]]:
    return lambda h: {"events": [{"event": PV, **{k: v(h) for k, v in item.items()}}], **RANGE_B}


def one(**f: Any) -> Callable[[str], list[dict[str, Any]]]:
    """A one-filter list whose fields may depend on the hostile string."""
    return lambda h: [{k: v(h) if callable(v) else v for k, v in f.items()}]


# (path, the field the hostile string goes into, whether it is a name (a 400 unknown_* is fine), body)
CASES: list[tuple[str, str, bool, Callable[[str], dict[str, Any]]]] = [
    ("/api/trends", "events[0].event", True, lambda h: {"events": [{"event": h}], **RANGE_B}),
    ("/api/trends", "events[0].filters[0].property", True, trends(filters=one(property=str, op="eq", value="x"))),
    ("/api/trends", "events[0].filters[0].value", False, trends(filters=one(property=lambda h: HOSTILE_PROPERTY,
                                                                         op="eq", value=str))),
    ("/api/trends", "events[0].filters[0].value", False, trends(filters=one(property="$current_url", op="contains",
                                                                         value=str))),
    ("/api/trends", "events[0].filters[0].value", False, trends(filters=one(property="$browser", op="neq",
                                                                         value=str))),
    ("/api/trends", "events[0].filters[0].value", False, trends(filters=lambda h: [{"property": "plan", "op": "in",
                                                                                  "value": [h, "pro"]}])),
    ("/api/trends", "events[0].filters[0].property", True, trends(filters=one(type="person", property=str,
                                                                           op="is_set"))),
    ("/api/trends", "events[0].filters[0].value", False, trends(filters=one(type="person", property="tier", op="eq",
                                                                         value=str))),
    ("/api/trends", "breakdown.property", True, lambda h: {"events": [{"event": PV}], "breakdown": {"property": h},
                                                          **RANGE_B}),
    ("/api/trends", "breakdown.property", True, lambda h: {"events": [{"event": PV}], "breakdown": {"type": "person",
                                                          "property": h}, **RANGE_B}),
    ("/api/trends", "property", True, lambda h: {"events": [{"event": PV}], "measure": "distribution", "property": h,
                                                **RANGE_B}),
    ("/api/funnels", "steps[1].event", True, lambda h: {"steps": [{"event": PV}, {"event": h}], "window_seconds": 600,
                                                       **RANGE_B}),
    ("/api/funnels", "steps[0].filters[0].value", False, lambda h: {"steps": [{"event": PV, "filters": [{"property":
     HOSTILE_PROPERTY, "op": "eq", "value": h}]}, {"event": "purchase"}], "window_seconds": 600, **RANGE_B}),
    ("/api/funnels", "breakdown.property", True, lambda h: {"steps": [{"event": PV}, {"event": "purchase"}],
                                                           "window_seconds": 600, "breakdown": {"property": h}, **RANGE_B}),
    ("/api/retention", "start_event", True, lambda h: {"start_event": h, "return_event": "$any", **RANGE_B}),
    ("/api/retention", "return_event", True, lambda h: {"start_event": PV, "return_event": h, **RANGE_B}),
    ("/api/sessions", "filters[0].property", True, lambda h: {"filters": one(property=str, op="is_set")(h), **RANGE_B}),
    ("/api/sessions", "filters[0].value", False, lambda h: {"filters": one(property="plan", op="neq", value=str)(h),
                                                           **RANGE_B}),
    ("/api/paths", "start_event", True, lambda h: {"start_event": h, "steps": 3, "limit": 100, **RANGE_B}),
]  # fmt: skip
REFERENCE = {"/api/trends": reference.trends, "/api/funnels": reference.funnels, "/api/retention": reference.retention,
             "/api/sessions": reference.sessions, "/api/paths": reference.paths}  # fmt: skip


@pytest.mark.parametrize(("path", "field", "is_name", "build"), CASES, ids=[f"{c[0][5:]}-{c[1]}-{n}" for n, c in
                                                                          enumerate(CASES)])  # fmt: skip
async def test_hostile_strings_in_a_field_are_data(
    client: TestClient,
    world: World,
    path: str,
    field: str,
    is_name: bool,
    build: Callable[[str], dict[str, Any]],
) -> None:
    for hostile in HOSTILE:
        body = build(hostile)
        status, answer = await post(client, path, world.b.key, body)
        if status == 400 and is_name:
            assert answer["code"] in ("unknown_event", "unknown_property"), (hostile, answer)
            assert field in answer["detail"], (hostile, answer)
            continue
        assert status == 200, (hostile, answer)
        assert_same(answer, REFERENCE[path](world.b.ref, body), f"{hostile!r}")


async def test_hostile_event_and_property_names_in_the_data_come_back(
    client: TestClient, world: World
) -> None:
    body = {"events": [{"event": HOSTILE_EVENT, "filters": [{"property": HOSTILE_PROPERTY, "op": "eq",
            "value": HOSTILE_VALUES[0]}]}], "measure": "totals", **RANGE_B}  # fmt: skip
    status, answer = await post(client, "/api/trends", world.b.key, body)
    assert status == 200 and sum(answer["series"][0]["values"]) > 0, answer
    assert_same(answer, reference.trends(world.b.ref, body))


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_events_listing_parameters(client: TestClient, world: World, hostile: str) -> None:
    for params in ({"event": hostile}, {"distinct_id": hostile},
                   {"filters": orjson.dumps([{"property": HOSTILE_PROPERTY, "op": "eq", "value": hostile}]).decode()},
                   {"filters": orjson.dumps([{"property": hostile, "op": "is_set"}]).decode()}):  # fmt: skip
        status, answer = await get(client, "/api/events", world.b.key, {**params, "limit": "1000"})
        assert status in (200, 400), (params, answer)
        if status == 200:
            want = reference.events(world.b.ref, event=params.get("event"), filters=orjson.loads(params.get(
                "filters", "[]")), distinct_ids=[hostile] if "distinct_id" in params else None)  # fmt: skip
            assert_same(answer["events"], want[:1000])
    status, answer = await get(client, "/api/events", world.b.key, {"cursor": hostile})
    assert status in (200, 400), answer


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_a_hostile_distinct_id_in_the_person_path_is_not_found(
    client: TestClient, world: World, hostile: str
) -> None:
    status, answer = await get(client, f"/api/persons/{quote(hostile, safe='')}", world.b.key, {})
    assert status in (400, 404), answer


async def test_the_tables_are_intact_afterwards(world: World) -> None:
    projects = {"p": [world.a.project.id, world.b.project.id]}
    for table, rows in world.stored.items():
        key = {"events": "project_id, uuid", "persons": "project_id, id"}.get(
            table, "project_id, distinct_id"
        )
        statement = f"SELECT uniqExact({key}) AS n FROM {table} WHERE project_id IN {{p:Array(UInt64)}}"
        [count] = await world.ch.query(statement, projects)
        assert count["n"] == rows, table
    [a] = await world.ch.query("SELECT uniqExact(uuid) AS n FROM events WHERE project_id = {p:UInt64}",
                               {"p": world.a.project.id})  # fmt: skip
    assert a["n"] == world.a.data.events["uuid"].nunique()

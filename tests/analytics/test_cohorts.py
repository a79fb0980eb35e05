"""Cohorts on both projects equal the reference: static and dynamic membership (listed page by page), cohort
filters and breakdowns in insights, versions on refresh and on schedule, CRUD, CSV, errors, isolation."""

from __future__ import annotations

import csv
import io
from typing import Any

import pandas as pd
import pytest
from aiohttp.test_utils import TestClient

from tests import reference
from tests.analytics.support import RANGE_A, RANGE_B, Side, World, assert_same, auth, get, post
from workers.metrics import COHORT_COMPUTATIONS
from workers.query import cohorts, funnels
from workers.query.http import CLICKHOUSE_KEY, POOL_KEY
from workers.query.tables import cell

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
GOLD = {"type": "person", "property": "tier", "op": "eq", "value": "gold"}
BOUGHT_TWICE = {"type": "behavioral", "event": "purchase", "min_count": 2, "days": 35}
DYNAMIC = {
    "gold": {"match": "all", "filters": [GOLD]},
    "bought twice in 35 days": {"match": "all", "filters": [BOUGHT_TWICE]},
    "no signup in 25 days": {"match": "all", "filters": [{"type": "behavioral", "event": "signed_up",
                                                          "did": False, "days": 25}]},
    "gold and viewed 5 times": {"match": "all", "filters": [GOLD, {"type": "behavioral", "event": "$pageview",
                                                                   "min_count": 5, "days": 40}]},
    "gold or score over 90": {"match": "any", "filters": [GOLD, {"type": "person", "property": "score",
                                                                 "op": "gt", "value": 90}]},
}  # fmt: skip


def people(side: Side) -> reference.People:
    return reference.People(side.data, side.project.id)


async def create(client: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/cohorts", json=body, headers=auth(key))
    answer = await response.json()
    assert response.status == 201, answer
    return answer


async def listed(client: TestClient, key: str, cohort_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """Every member, following next_cursor."""
    persons: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        status, answer = await get(client, f"/api/cohorts/{cohort_id}/persons", key, params)
        assert status == 200, answer
        assert len(answer["persons"]) <= limit
        persons += answer["persons"]
        cursor = answer["next_cursor"]
        if cursor is None:
            return persons


def dynamic_reference(side: Side, cohort: dict[str, Any]) -> set[str]:
    return reference.dynamic_members(side.ref, people(side), cohort, pd.Timestamp(cohort["computed_at"]))


async def test_a_static_cohort_is_the_persons_of_its_distinct_ids(client: TestClient, world: World) -> None:
    ids_of: dict[str, list[str]] = {}
    for distinct_id, person in sorted(people(world.a).person_of.items()):
        ids_of.setdefault(person, []).append(distinct_id)
    shared = [ids for ids in ids_of.values() if len(ids) > 1][:20]
    alone = [ids for ids in ids_of.values() if len(ids) == 1][:20]
    ids = [d for group in shared + alone for d in group]
    ids += [ids[0], "nobody-1", "nobody-2"]
    cohort = await create(client, world.a.key, {"name": "picked", "kind": "static", "distinct_ids": ids})
    members, unmatched = reference.static_members(people(world.a), ids)
    assert unmatched == 2 and len(members) == 40 < len(ids) - 3, "merged persons have several ids"
    assert {k: cohort[k] for k in ("name", "kind", "distinct_ids_count", "unmatched", "count", "version")} == {
        "name": "picked", "kind": "static", "distinct_ids_count": len(ids) - 1, "unmatched": 2, "count": len(members),
        "version": 1,
    }  # fmt: skip
    assert_same(await listed(client, world.a.key, cohort["id"], limit=7),
                reference.cohort_persons(people(world.a), members))  # fmt: skip


async def test_a_csv_upload_takes_the_first_column_past_the_header(client: TestClient, world: World) -> None:
    text = "distinct_id,note\nuser-5,x\n\nuser-6\n  \nuser-7,y,z\nnobody\n"
    response = await client.post(
        "/api/cohorts", params={"name": "from csv"}, data=text.encode(),
        headers={**auth(world.b.key), "Content-Type": "text/csv"},
    )  # fmt: skip
    cohort = await response.json()
    assert response.status == 201, cohort
    members, unmatched = reference.static_members(people(world.b), ["user-5", "user-6", "user-7", "nobody"])
    assert (cohort["name"], cohort["distinct_ids_count"], cohort["unmatched"]) == ("from csv", 4, unmatched)
    assert unmatched == 1 and cohort["count"] == len(members) == 3
    assert_same(
        await listed(client, world.b.key, cohort["id"]), reference.cohort_persons(people(world.b), members)
    )


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("name", list(DYNAMIC))
async def test_a_dynamic_cohort_is_computed_at_its_computed_at(
    client: TestClient, world: World, side: str, name: str
) -> None:
    of = getattr(world, side)
    cohort = await create(client, of.key, {"name": name, "kind": "dynamic", **DYNAMIC[name]})
    assert (cohort["match"], cohort["filters"][0]["type"]) == (
        DYNAMIC[name]["match"],
        DYNAMIC[name]["filters"][0]["type"],
    )
    members = dynamic_reference(of, cohort)
    assert 0 < len(members) < len(people(of).population), "the cohort splits the persons"
    assert cohort["count"] == len(members)
    assert_same(
        await listed(client, of.key, cohort["id"], limit=1000), reference.cohort_persons(people(of), members)
    )


async def test_trends_filter_and_break_down_by_cohorts(client: TestClient, world: World) -> None:
    gold = await create(client, world.a.key, {"name": "gold", "kind": "dynamic", **DYNAMIC["gold"]})
    buyers = await create(client, world.a.key, {"name": "buyers", "kind": "dynamic",
                                                 **DYNAMIC["bought twice in 35 days"]})  # fmt: skip
    members = {gold["id"]: dynamic_reference(world.a, gold), buyers["id"]: dynamic_reference(world.a, buyers)}
    bodies = [
        {"events": [{"event": "$pageview", "filters": [{"type": "cohort", "value": buyers["id"]}]}], **RANGE_A},
        {"events": [{"event": "purchase", "filters": [{"type": "cohort", "value": gold["id"], "op": "not_in"},
                                                      {"property": "plan", "op": "eq", "value": "pro"}]}],
         "measure": "totals", "interval": "week", **RANGE_A},
        {"events": [{"event": "$pageview"}, {"event": "purchase"}], "measure": "uniques",
         "breakdown": {"type": "cohort", "cohorts": [buyers["id"], gold["id"]]}, **RANGE_A},
        {"events": [{"event": "purchase"}], "measure": "sum", "property": "amount",
         "breakdown": {"type": "cohort", "cohorts": [gold["id"]]}, **RANGE_A},
    ]  # fmt: skip
    for body in bodies:
        status, answer = await post(client, "/api/trends", world.a.key, body)
        assert status == 200, answer
        assert_same(answer, reference.trends(world.a.ref, body, members))
        assert all(sum(s["values"]) > 0 for s in answer["series"]), answer
    status, answer = await post(client, "/api/trends", world.a.key, bodies[2])
    assert [s["breakdown_value"] for s in answer["series"]] == [buyers["id"], gold["id"]] * 2


async def test_funnels_sessions_and_events_filter_by_cohort(client: TestClient, world: World) -> None:
    gold = await create(client, world.b.key, {"name": "gold", "kind": "dynamic", **DYNAMIC["gold"]})
    members = {gold["id"]: dynamic_reference(world.b, gold)}
    in_gold = {"type": "cohort", "value": gold["id"]}
    funnel = {"steps": [{"event": "$pageview", "filters": [in_gold]}, {"event": "purchase"}],
              "window_seconds": 86400, **RANGE_B}  # fmt: skip
    status, answer = await post(client, "/api/funnels", world.b.key, funnel)
    assert status == 200 and answer["steps"][1]["count"] > 0, answer
    assert_same(answer, reference.funnels(world.b.ref, funnel, members))
    sessions = {"interval": "day", "filters": [{**in_gold, "op": "not_in"}], **RANGE_B}
    status, answer = await post(client, "/api/sessions", world.b.key, sessions)
    assert status == 200, answer
    assert_same(answer, reference.sessions(world.b.ref, sessions, members))
    params = {
        "event": "signed_up",
        "filters": f'[{{"type": "cohort", "value": {gold["id"]}}}]',
        "limit": "1000",
    }
    status, answer = await get(client, "/api/events", world.b.key, params)
    assert status == 200 and answer["events"], answer
    assert_same(
        answer["events"], reference.events(world.b.ref, event="signed_up", filters=[in_gold], cohorts=members)
    )


@pytest.mark.parametrize("name", ["a", "b"])
@pytest.mark.parametrize("order", ["ordered", "unordered"])
async def test_funnels_break_down_by_overlapping_cohorts(
    client: TestClient, world: World, name: str, order: str
) -> None:
    """One entry per cohort in request order, each over its members only; the overall steps unchanged."""
    side, dates = (world.a, RANGE_A) if name == "a" else (world.b, RANGE_B)
    gold = await create(client, side.key, {"name": "gold", "kind": "dynamic", **DYNAMIC["gold"]})
    wide = await create(
        client, side.key, {"name": "wide", "kind": "dynamic", **DYNAMIC["gold or score over 90"]}
    )
    members = {gold["id"]: dynamic_reference(side, gold), wide["id"]: dynamic_reference(side, wide)}
    assert members[gold["id"]] & members[wide["id"]] and members[wide["id"]] - members[gold["id"]]
    body = {"steps": [{"event": "$pageview"}, {"event": "signed_up"}, {"event": "purchase"}],
            "window_seconds": 86400, "order": order, "histogram": {"from_step": 1, "to_step": 3, "bins": 4},
            "breakdown": {"type": "cohort", "cohorts": [wide["id"], gold["id"]]}, **dates}  # fmt: skip
    status, answer = await post(client, "/api/funnels", side.key, body)
    assert status == 200, answer
    assert_same(answer, reference.funnels(side.ref, body, members))
    assert [b["breakdown_value"] for b in answer["breakdowns"]] == [wide["id"], gold["id"]]
    wide_counts, gold_counts = ([s["count"] for s in b["steps"]] for b in answer["breakdowns"])
    assert all(g > 0 for g in gold_counts) and wide_counts[0] > gold_counts[0]
    plain = {k: v for k, v in body.items() if k != "breakdown"}
    status, without = await post(client, "/api/funnels", side.key, plain)
    assert status == 200 and (answer["steps"], answer["histogram"]) == (
        without["steps"],
        without["histogram"],
    )
    if name == "b":  # B's cohorts are unknown to A
        status, refused = await post(client, "/api/funnels", world.a.key, {**body, **RANGE_A})
        assert (status, refused["detail"]) == (
            400,
            f"breakdown.cohorts[0]: no cohort {wide['id']} in this project",
        )


async def test_funnels_with_cohort_steps_exclusions_and_breakdown(client: TestClient, world: World) -> None:
    gold = await create(client, world.a.key, {"name": "gold", "kind": "dynamic", **DYNAMIC["gold"]})
    buyers = await create(client, world.a.key, {"name": "buyers", "kind": "dynamic",
                                                 **DYNAMIC["bought twice in 35 days"]})  # fmt: skip
    members = {gold["id"]: dynamic_reference(world.a, gold), buyers["id"]: dynamic_reference(world.a, buyers)}
    steps = [{"event": "$pageview", "filters": [{"type": "cohort", "value": buyers["id"]}]},
             {"event": "signed_up"}, {"event": "purchase"}]  # fmt: skip
    exclusion = {"event": "$autocapture", "from_step": 2, "to_step": 3,
                 "filters": [{"type": "cohort", "value": gold["id"], "op": "not_in"}]}  # fmt: skip
    for order in ("ordered", "strict", "unordered"):
        body = {"steps": steps, "window_seconds": 86400, "order": order, "exclusions": [exclusion],
                "breakdown": {"type": "cohort", "cohorts": [gold["id"]]}, **RANGE_A}  # fmt: skip
        status, answer = await post(client, "/api/funnels", world.a.key, body)
        assert status == 200, answer
        assert_same(answer, reference.funnels(world.a.ref, body, members))
        assert answer["steps"][2]["count"] > 0, answer
    response = await client.post(
        "/api/funnels", json=body, headers={**auth(world.a.key), "Accept": "text/csv"}
    )
    text = await response.text()
    assert response.status == 200, text
    table = list(csv.reader(io.StringIO(text, newline="")))
    assert [row[0] for row in table[4:]] == [
        f"{gold['id']} · {n}. {s['event']}" for n, s in enumerate(steps, 1)
    ]
    assert table[4][1:] == [cell(answer["breakdowns"][0]["steps"][0][c]) for c in funnels.FUNNEL_COLUMNS]


async def test_a_refresh_writes_a_new_version_and_drops_the_old(client: TestClient, world: World) -> None:
    cohort = await create(client, world.a.key, {"name": "gold", "kind": "dynamic", **DYNAMIC["gold"]})
    status, refreshed = await post(
        client, f"/api/cohorts/{cohort['id']}/refresh", world.a.key, {}, refresh=False
    )
    assert status == 200 and refreshed["version"] == cohort["version"] + 1 == 2, refreshed
    assert refreshed["count"] == cohort["count"] and refreshed["computed_at"] > cohort["computed_at"]
    await cohorts.pruned()  # the older version is deleted in the background
    rows = await world.ch.query(
        "SELECT version, count() AS n FROM cohort_people WHERE cohort_id = {id:UInt64} GROUP BY version",
        {"id": cohort["id"]},
    )
    assert rows == [{"version": 2, "n": cohort["count"]}]


async def test_a_failed_computation_keeps_the_last_version(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort = await create(client, world.a.key, {"name": "gold", "kind": "dynamic", **DYNAMIC["gold"]})
    failed = COHORT_COMPUTATIONS.labels("error")._value.get()
    monkeypatch.setattr(cohorts, "dynamic_sql", lambda *_: "INSERT INTO no_such_table SELECT 1")
    status, answer = await post(
        client, f"/api/cohorts/{cohort['id']}/refresh", world.a.key, {}, refresh=False
    )
    assert status == 400 and answer["code"] == "query_error", answer
    assert COHORT_COMPUTATIONS.labels("error")._value.get() == failed + 1
    status, now = await get(client, f"/api/cohorts/{cohort['id']}", world.a.key, {})
    assert_same(now, cohort)
    assert len(await listed(client, world.a.key, cohort["id"], limit=1000)) == cohort["count"]


async def test_the_schedule_recomputes_stale_dynamic_cohorts(client: TestClient, world: World) -> None:
    app = client.server.app
    stale = await create(client, world.b.key, {"name": "stale", "kind": "dynamic", **DYNAMIC["gold"]})
    fresh = await create(client, world.b.key, {"name": "fresh", "kind": "dynamic", **DYNAMIC["gold"]})
    static = await create(
        client, world.b.key, {"name": "static", "kind": "static", "distinct_ids": ["user-1"]}
    )
    await app[POOL_KEY].execute(
        "UPDATE cohorts SET computed_at = computed_at - interval '2 hours' WHERE id = ANY($1::bigint[])",
        [stale["id"], static["id"]],
    )
    claimed = await cohorts.refresh_stale(app[POOL_KEY], app[CLICKHOUSE_KEY], 3600)
    assert stale["id"] in claimed and fresh["id"] not in claimed and static["id"] not in claimed
    for cohort, version in ((stale, 2), (fresh, 1), (static, 1)):
        status, now = await get(client, f"/api/cohorts/{cohort['id']}", world.b.key, {})
        assert status == 200 and now["version"] == version, now
    assert stale["id"] not in await cohorts.refresh_stale(app[POOL_KEY], app[CLICKHOUSE_KEY], 3600)


async def test_a_cached_answer_ends_with_its_cohort_version(client: TestClient, world: World) -> None:
    cohort = await create(client, world.b.key, {"name": "few", "kind": "static", "distinct_ids": ["user-1"]})
    body = {
        "events": [{"event": "$pageview", "filters": [{"type": "cohort", "value": cohort["id"]}]}],
        **RANGE_B,
    }

    async def cache_header() -> str:
        response = await client.post("/api/trends", json=body, headers=auth(world.b.key))
        assert response.status == 200, await response.text()
        return response.headers["X-Cache"]

    assert [await cache_header(), await cache_header()] == ["miss", "hit"]
    response = await client.patch(f"/api/cohorts/{cohort['id']}", json={"distinct_ids": ["user-1", "user-2"]},
                                  headers=auth(world.b.key))  # fmt: skip
    patched = await response.json()
    assert response.status == 200 and patched["version"] == 2 and patched["distinct_ids_count"] == 2, patched
    members, _ = reference.static_members(people(world.b), ["user-1", "user-2"])
    assert patched["count"] == len(members)
    assert await cache_header() == "miss"
    status, answer = await post(client, "/api/trends", world.b.key, body)
    assert status == 200, answer
    assert_same(answer, reference.trends(world.b.ref, body, {cohort["id"]: members}))


async def test_crud(client: TestClient, world: World) -> None:
    cohort = await create(client, world.a.key, {"name": "gold", "kind": "dynamic", **DYNAMIC["gold"]})
    path, key = f"/api/cohorts/{cohort['id']}", world.a.key
    status, listing = await get(client, "/api/cohorts", key, {})
    assert status == 200 and cohort in listing["cohorts"]
    response = await client.patch(path, json={"name": "renamed"}, headers=auth(key))
    renamed = await response.json()
    assert response.status == 200 and renamed["name"] == "renamed" and renamed["version"] == 1, renamed
    response = await client.patch(
        path, json={"match": "any", "filters": [GOLD, BOUGHT_TWICE]}, headers=auth(key)
    )
    changed = await response.json()
    assert response.status == 200 and changed["version"] == 2 and changed["match"] == "any", changed
    assert changed["filters"][1] == {**BOUGHT_TWICE, "did": True}
    assert changed["count"] == len(dynamic_reference(world.a, changed))
    assert (await client.delete(path, headers=auth(key))).status == 204
    status, answer = await get(client, path, key, {})
    assert (status, answer["code"]) == (404, "cohort_not_found")
    rows = await world.ch.query("SELECT count() AS n FROM cohort_people WHERE cohort_id = {id:UInt64}",
                                {"id": cohort["id"]})  # fmt: skip
    assert rows == [{"n": 0}]


BAD = [
    ({"kind": "static", "distinct_ids": []}, "invalid_request", "name:"),
    ({"name": "x", "kind": "neither"}, "invalid_request", "kind:"),
    ({"name": "x", "kind": "static", "distinct_ids": ["a", "b\x00"]}, "invalid_request", "distinct_ids[1]:"),
    ({"name": "x", "kind": "static"}, "invalid_request", "distinct_ids:"),
    ({"name": "x", "kind": "dynamic", "filters": []}, "invalid_request", "filters:"),
    ({"name": "x", "kind": "dynamic", "match": "some", "filters": [GOLD]}, "invalid_request", "match:"),
    ({"name": "x", "kind": "dynamic", "filters": [GOLD, {**BOUGHT_TWICE, "days": 0}]}, "invalid_request",
     "filters[1].days:"),
    ({"name": "x", "kind": "dynamic", "filters": [{**BOUGHT_TWICE, "min_count": 10_001}]}, "invalid_request",
     "filters[0].min_count:"),
    ({"name": "x", "kind": "dynamic", "filters": [{**GOLD, "type": "event"}]}, "invalid_request",
     "filters[0].type:"),
    ({"name": "x", "kind": "dynamic", "filters": [{**BOUGHT_TWICE, "event": "no_such_event"}]}, "unknown_event",
     "filters[0].event:"),
    ({"name": "x", "kind": "dynamic", "filters": [GOLD, {**GOLD, "property": "no_such"}]}, "unknown_property",
     "filters[1].property:"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "code", "field"), BAD, ids=[f for _, _, f in BAD])
async def test_bad_cohorts_are_400s_naming_the_field(
    client: TestClient, world: World, body: dict[str, Any], code: str, field: str
) -> None:
    response = await client.post("/api/cohorts", json=body, headers=auth(world.a.key))
    answer = await response.json()
    assert response.status == 400 and answer["code"] == code and answer["detail"].startswith(field), answer


async def test_cohorts_in_insights_are_the_callers_only(client: TestClient, world: World) -> None:
    """A's cohort is unknown to B: CRUD 404, filters and breakdowns 400 naming the field."""
    cohort = await create(client, world.a.key, {"name": "a's", "kind": "static", "distinct_ids": ["user-1"]})
    path, key = f"/api/cohorts/{cohort['id']}", world.b.key
    for method, url in (("GET", path), ("PATCH", path), ("DELETE", path), ("POST", f"{path}/refresh"),
                        ("GET", f"{path}/persons"), ("GET", "/api/cohorts/x1"), ("GET", "/api/cohorts/0")):  # fmt: skip
        response = await client.request(method, url, json={"name": "b's"}, headers=auth(key))
        assert response.status == 404 and (await response.json())["code"] == "cohort_not_found", (method, url)
    status, listing = await get(client, "/api/cohorts", key, {})
    assert status == 200 and cohort["id"] not in [c["id"] for c in listing["cohorts"]]
    in_a = {"type": "cohort", "value": cohort["id"]}
    requests = [
        ("/api/trends", {"events": [{"event": "$pageview", "filters": [GOLD, in_a]}], **RANGE_B},
         "events[0].filters[1].value"),
        ("/api/trends", {"events": [{"event": "$pageview"}], "breakdown": {"type": "cohort", "cohorts": [cohort["id"]]},
                         **RANGE_B}, "breakdown.cohorts[0]"),
        ("/api/funnels", {"steps": [{"event": "$pageview"}, {"event": "purchase", "filters": [in_a]}],
                          "window_seconds": 60, **RANGE_B}, "steps[1].filters[0].value"),
        ("/api/funnels", {"steps": [{"event": "$pageview"}, {"event": "purchase"}], "window_seconds": 60,
                          "breakdown": {"type": "cohort", "cohorts": [cohort["id"]]}, **RANGE_B}, "breakdown.cohorts[0]"),
        ("/api/sessions", {"filters": [in_a], **RANGE_B}, "sessions.filters[0].value"),
    ]  # fmt: skip
    for url, body, field in requests:
        status, answer = await post(client, url, key, body)
        assert status == 400 and answer["code"] == "invalid_request", answer
        assert answer["detail"] == f"{field}: no cohort {cohort['id']} in this project", answer
    status, answer = await get(
        client, "/api/events", key, {"filters": f'[{{"type": "cohort", "value": {cohort["id"]}}}]'}
    )
    assert (
        status == 400
        and answer["detail"] == f"query.filters[0].value: no cohort {cohort['id']} in this project"
    )


@pytest.mark.parametrize(
    ("breakdown", "field"),
    [
        ({"type": "cohort", "cohorts": []}, "breakdown.cohorts:"),
        ({"type": "cohort", "cohorts": list(range(1, 22))}, "breakdown.cohorts:"),
        ({"type": "cohort", "cohorts": [1, 1]}, "breakdown.cohorts[1]:"),
        ({"type": "cohort", "cohorts": ["1"]}, "breakdown.cohorts[0]:"),
    ],
)
async def test_bad_cohort_breakdowns_name_the_field(
    client: TestClient, world: World, breakdown: dict[str, Any], field: str
) -> None:
    body = {"events": [{"event": "$pageview"}], "breakdown": breakdown, **RANGE_A}
    status, answer = await post(client, "/api/trends", world.a.key, body)
    assert status == 400 and answer["detail"].startswith(field), answer


@pytest.mark.parametrize(
    ("item", "field"),
    [({"type": "cohort", "value": "1"}, "value"), ({"type": "cohort", "value": 1, "op": "eq"}, "op"),
     ({"type": "cohort", "value": True}, "value")],
)  # fmt: skip
async def test_bad_cohort_filters_name_the_field(
    client: TestClient, world: World, item: dict[str, Any], field: str
) -> None:
    body = {"events": [{"event": "$pageview", "filters": [item]}], **RANGE_A}
    status, answer = await post(client, "/api/trends", world.a.key, body)
    assert status == 400 and answer["detail"].startswith(f"events[0].filters[0].{field}:"), answer

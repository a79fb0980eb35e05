"""GraphQL (`POST /graphql`) answers exactly as REST: every insight, events, persons, a person, definitions,
cohorts (the list, one, its members);
a refused field is the REST error's detail and code; no key, no answer."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from bench.generate import generate, insert
from tests.analytics.support import RANGE_A, Side, World, all_pages, assert_same, auth, get, post
from tests.reference import Events
from workers.projects import ensure_project

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
INSIGHT_BODIES = {
    "trends": {"events": [{"event": "$pageview"}, {"event": "purchase"}], "measure": "uniques", "interval": "week",
               "breakdown": {"type": "person", "property": "tier", "limit": 3}, **RANGE_A},
    "funnels": {"steps": [{"event": "$pageview"}, {"event": "signed_up"}, {"event": "purchase"}],
                "window_seconds": 86400, "breakdown": {"type": "event", "property": "plan", "limit": 2}, **RANGE_A},
    "retention": {"start_event": "signed_up", "return_event": "$any", "period": "week", "periods": 2, **RANGE_A},
    "sessions": {"interval": "day", "filters": [{"property": "$browser", "op": "eq", "value": "Chrome"}], **RANGE_A},
    "paths": {"start_event": "$pageview", "steps": 3, "limit": 20, **RANGE_A},
}  # fmt: skip
EVENT = "uuid event distinctId personId timestamp properties"
PERSON = "id distinctIds properties isIdentified createdAt"


def snake(value: Any) -> Any:
    """GraphQL's camelCase field names as REST's snake_case (`properties` is JSON: left as it is)."""
    if isinstance(value, list):
        return [snake(v) for v in value]
    if isinstance(value, dict):
        return {re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), k): v if k == "properties" else snake(v)
                for k, v in value.items()}  # fmt: skip
    return value


async def graphql(
    client: TestClient, key: str, document: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": document, "variables": variables or {}},
                                 headers=auth(key))  # fmt: skip
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def test_every_insight_answers_as_rest(client: TestClient, world: World) -> None:
    """All in one document: its fields run one after the other, each as its REST endpoint."""
    document = "query($trends: JSON!, $funnels: JSON!, $retention: JSON!, $sessions: JSON!, $paths: JSON!) {" + " ".join(
        f"{name}(request: ${name})" for name in INSIGHT_BODIES
    ) + "}"  # fmt: skip
    answer = await graphql(
        client, world.a.key, document, {n: {**b, "refresh": True} for n, b in INSIGHT_BODIES.items()}
    )
    assert "errors" not in answer, answer
    for name, body in INSIGHT_BODIES.items():
        status, rest = await post(client, f"/api/{name}", world.a.key, body)
        assert status == 200, rest
        assert_same(answer["data"][name], rest, where=name)
    assert len(answer["data"]["funnels"]["breakdowns"]) == 2 and answer["data"]["paths"]["edges"]


@pytest.mark.parametrize(
    ("field", "request_body", "code", "detail"),
    [
        ("trends", {"events": []}, "invalid_request", "events: required, a non-empty list of {event, filters?}"),
        ("funnels", {**INSIGHT_BODIES["funnels"], "window_seconds": 0}, "invalid_request",
         "window_seconds: required, an integer from 1 to 7776000"),
        ("retention", {**INSIGHT_BODIES["retention"], "start_event": "no_such_event"}, "unknown_event", None),
        ("paths", [1], "invalid_request", "the body must be a JSON object"),
    ],
)  # fmt: skip
async def test_a_bad_request_is_the_rest_detail_and_code(
    client: TestClient, world: World, field: str, request_body: Any, code: str, detail: str | None
) -> None:
    status, rest = await post(client, f"/api/{field}", world.a.key, request_body, refresh=False)
    assert status == 400 and rest["code"] == code
    assert detail is None or rest["detail"] == detail
    answer = await graphql(
        client, world.a.key, f"query($r: JSON!) {{ {field}(request: $r) }}", {"r": request_body}
    )
    assert answer["data"] == {field: None}
    [error] = answer["errors"]
    assert error["message"] == rest["detail"] and error["extensions"] == {"code": code}
    assert error["path"] == [field]


async def test_without_a_key_nothing_runs(client: TestClient, world: World) -> None:
    for headers in ({}, auth("no-such-key")):
        response = await client.post(
            "/graphql", json={"query": "{ definitions { events } }"}, headers=headers
        )
        assert response.status == 401
        assert (await response.json())["code"] == "invalid_api_key"
    response = await client.get("/graphql", headers=auth(world.a.key))
    assert response.status == 405 and (await response.json())["code"] == "method_not_allowed"


@pytest.fixture(scope="module")
async def third(world: World, pg_dsn: str) -> AsyncIterator[Side]:
    """A third project with its own events, and its persons in Postgres as the persons worker keeps them."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    project = await ensure_project(pool, "graphql", api_token=f"gq-{uuid.uuid4().hex}")
    data = generate(13, project.id, persons=40, days=3, events=3000, start=datetime(2026, 11, 2, tzinfo=UTC))
    await insert(world.ch, data)
    persons = data.persons.sort_values("version").drop_duplicates("id", keep="last")
    persons = persons[persons["is_deleted"] == 0]  # merged into another
    ids = data.person_distinct_ids.sort_values("version").drop_duplicates("distinct_id", keep="last")
    await pool.executemany(
        "INSERT INTO persons (id, project_id, properties, is_identified, created_at, version)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(uuid.UUID(p.id), project.id, p.properties, bool(p.is_identified), p.created_at.to_pydatetime(), int(p.version))
         for p in persons.itertuples()],
    )  # fmt: skip
    await pool.executemany(
        "INSERT INTO person_distinct_ids (project_id, distinct_id, person_id, version) VALUES ($1, $2, $3, $4)",
        [(project.id, d.distinct_id, uuid.UUID(d.person_id), int(d.version)) for d in ids.itertuples()],
    )
    await pool.close()
    yield Side(project, data, Events(data, project.id, "UTC"))


async def test_persons_pages_answer_as_rest(client: TestClient, third: Side) -> None:
    rest = await persons_pages(client, third.key, {"limit": "7"})
    assert len(rest) > 14, "several pages"
    found, cursor = [], None
    while True:
        answer = await graphql(
            client, third.key, f"query($c: String) {{ persons(limit: 7, cursor: $c) {{ persons {{ {PERSON} }} nextCursor }} }}",
            {"c": cursor},
        )  # fmt: skip
        assert "errors" not in answer, answer
        found += snake(answer["data"]["persons"]["persons"])
        cursor = answer["data"]["persons"]["nextCursor"]
        if cursor is None:
            break
    assert_same(found, rest)
    document = f'{{ persons(search: "user-1") {{ persons {{ {PERSON} }} nextCursor }} }}'
    status, searched = await get(client, "/api/persons", third.key, {"search": "user-1"})
    assert status == 200 and searched["persons"]
    assert_same(snake((await graphql(client, third.key, document))["data"]["persons"]), searched)


async def persons_pages(client: TestClient, key: str, params: dict[str, str]) -> list[dict[str, Any]]:
    persons: list[dict[str, Any]] = []
    cursor = None
    while True:
        status, answer = await get(
            client, "/api/persons", key, {**params, **({"cursor": cursor} if cursor else {})}
        )
        assert status == 200, answer
        persons += answer["persons"]
        cursor = answer["next_cursor"]
        if cursor is None:
            return persons


async def test_a_person_answers_as_rest(client: TestClient, third: Side) -> None:
    busiest = third.ref.frame["distinct_id"]
    distinct_id = busiest[busiest.str.startswith("user-")].value_counts().index[0]
    status, rest = await get(client, f"/api/persons/{distinct_id}", third.key, {"limit": "5"})
    assert status == 200 and len(rest["events"]) == 5 and rest["next_cursor"], rest
    document = f"""query($d: String!) {{ person(distinctId: $d, limit: 5) {{
        {PERSON} version events {{ {EVENT} }} nextCursor }} }}"""
    answer = await graphql(client, third.key, document, {"d": distinct_id})
    assert_same(snake(answer["data"]["person"]), rest)
    assert (await graphql(client, third.key, document, {"d": "nobody"}))["data"]["person"] is None


@pytest.mark.parametrize(
    "arguments",
    [{"limit": 50}, {"event": "purchase", "filters": [{"property": "plan", "op": "eq", "value": "pro"}], "limit": 10,
      "after": "2026-11-03T00:00:00Z", "before": "2026-11-04T00:00:00Z"}],
    ids=["latest", "narrowed"],
)  # fmt: skip
async def test_events_pages_answer_as_rest(
    client: TestClient, third: Side, arguments: dict[str, Any]
) -> None:
    params = {k: orjson.dumps(v).decode() if k == "filters" else str(v) for k, v in arguments.items()}
    rest = await all_pages(client, "/api/events", third.key, params)
    assert len(rest) > arguments["limit"], "several pages"
    document = (
        "query($event: String, $filters: JSON, $after: String, $before: String, $limit: Int, $cursor: String) {"
        " events(event: $event, filters: $filters, after: $after, before: $before, limit: $limit, cursor: $cursor)"
        f" {{ events {{ {EVENT} }} nextCursor }} }}"
    )
    found, cursor = [], None
    while True:
        answer = await graphql(client, third.key, document, {**arguments, "cursor": cursor})
        assert "errors" not in answer, answer
        found += snake(answer["data"]["events"]["events"])
        cursor = answer["data"]["events"]["nextCursor"]
        if cursor is None:
            break
    assert_same(found, rest)


async def test_an_events_argument_is_checked_as_rest(client: TestClient, third: Side) -> None:
    answer = await graphql(client, third.key, "{ events(limit: 0) { nextCursor } definitions { events } }")
    assert answer["errors"][0]["message"] == "limit: an integer from 1 to 1000"
    assert answer["errors"][0]["extensions"] == {"code": "invalid_request"}
    assert answer["data"]["events"] is None and "purchase" in answer["data"]["definitions"]["events"]


async def test_definitions_answer_as_rest(client: TestClient, third: Side, world: World) -> None:
    status, rest = await get(client, "/api/definitions", third.key, {})
    assert status == 200 and "purchase" in rest["events"]
    answer = await graphql(
        client,
        third.key,
        "{ definitions { events eventProperties { name type } personProperties { name type } } }",
    )
    assert_same(snake(answer["data"]["definitions"]), rest)
    assert "invited_friend" not in answer["data"]["definitions"]["events"]  # project B's own event


COHORT = "id name kind count version computedAt createdAt updatedAt match filters distinctIdsCount unmatched"
MEMBER = "id distinctIds properties"


async def create_cohort(client: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/cohorts", json=body, headers=auth(key))
    answer: dict[str, Any] = await response.json()
    assert response.status == 201, answer
    return answer


def as_rest(cohort: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL cohort as REST writes it: without the other kind's fields (null in GraphQL)."""
    kind_fields = ("distinct_ids_count", "unmatched") if cohort["kind"] == "dynamic" else ("match", "filters")
    assert all(cohort[k] is None for k in kind_fields), cohort
    return {k: v for k, v in cohort.items() if k not in kind_fields}


async def test_cohorts_answer_as_rest(client: TestClient, world: World) -> None:
    key = world.b.key
    static = await create_cohort(
        client, key, {"name": "few", "kind": "static", "distinct_ids": ["user-1", "user-2", "nobody"]}
    )
    gold = {"type": "person", "property": "tier", "op": "eq", "value": "gold"}
    dynamic = await create_cohort(client, key, {"name": "gold", "kind": "dynamic", "filters": [gold]})
    document = (
        f"query($s: Int!, $d: Int!) {{ cohorts {{ {COHORT} }} static: cohort(id: $s) {{ {COHORT} }}"
        f" dynamic: cohort(id: $d) {{ {COHORT} }} }}"
    )
    answer = await graphql(client, key, document, {"s": static["id"], "d": dynamic["id"]})
    assert "errors" not in answer, answer
    status, rest = await get(client, "/api/cohorts", key, {})
    assert status == 200 and {static["id"], dynamic["id"]} <= {c["id"] for c in rest["cohorts"]}
    assert_same([as_rest(c) for c in snake(answer["data"]["cohorts"])], rest["cohorts"])
    assert_same(as_rest(snake(answer["data"]["static"])), static)
    assert_same(as_rest(snake(answer["data"]["dynamic"])), dynamic)

    members, cursor = [], None
    while True:
        page = await graphql(
            client, key, f"query($id: Int!, $c: String) {{ cohortPersons(id: $id, limit: 9, cursor: $c)"
            f" {{ persons {{ {MEMBER} }} nextCursor }} }}", {"id": dynamic["id"], "c": cursor},
        )  # fmt: skip
        assert "errors" not in page, page
        members += snake(page["data"]["cohortPersons"]["persons"])
        cursor = page["data"]["cohortPersons"]["nextCursor"]
        if cursor is None:
            break
    status, listed = await get(client, f"/api/cohorts/{dynamic['id']}/persons", key, {"limit": "1000"})
    assert status == 200 and listed["next_cursor"] is None and len(listed["persons"]) == dynamic["count"] > 9
    assert_same(members, listed["persons"])


async def test_another_projects_cohort_is_null_or_the_rest_error(client: TestClient, world: World) -> None:
    b_cohort = await create_cohort(
        client, world.b.key, {"name": "b's", "kind": "static", "distinct_ids": ["user-1"]}
    )
    document = (
        "query($id: Int!) { cohort(id: $id) { id } cohortPersons(id: $id, limit: 1) { nextCursor }"
        " cohorts { id } }"
    )
    answer = await graphql(client, world.a.key, document, {"id": b_cohort["id"]})
    status, rest = await get(client, f"/api/cohorts/{b_cohort['id']}/persons", world.a.key, {"limit": "1"})
    assert status == 404 and rest["code"] == "cohort_not_found"
    assert answer["data"]["cohort"] is None and answer["data"]["cohortPersons"] is None
    assert b_cohort["id"] not in [c["id"] for c in answer["data"]["cohorts"]]
    [error] = answer["errors"]
    assert (error["message"], error["extensions"], error["path"]) == (
        rest["detail"], {"code": "cohort_not_found"}, ["cohortPersons"]
    )  # fmt: skip
    own = await graphql(client, world.b.key, document, {"id": b_cohort["id"]})
    assert "errors" not in own and own["data"]["cohort"] == {"id": b_cohort["id"]}, own
    limit = await graphql(
        client, world.b.key, f"{{ cohortPersons(id: {b_cohort['id']}, limit: 0) {{ nextCursor }} }}"
    )
    assert limit["errors"][0]["message"] == "limit: an integer from 1 to 1000"
    assert limit["errors"][0]["extensions"] == {"code": "invalid_request"}

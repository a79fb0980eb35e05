"""Trends and project endpoints over chDB and Postgres, against an independent Python computation."""

from __future__ import annotations

import random
import statistics
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.clickhouse import ClickHouse, connect
from workers.migrate import migrate_clickhouse
from workers.projects import Project, ensure_project
from workers.query import create_app
from workers.settings import Settings
from workers.writer import DISTINCT_ID_COLUMNS, EVENT_COLUMNS, PERSON_COLUMNS

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
TZ = "America/New_York"  # daylight saving time ends on 2026-11-01, inside the range
ADMIN = "trends-admin-key"
EVENTS_PER_PROJECT = 50_000  # 100k events in all, plus duplicates
USERS, MERGED = 1000, 100  # per project; user-n (n < MERGED) was merged into user-(n + MERGED)
HOSTILE = ["'; DROP TABLE events; --", "\\' OR 1=1 --", "{project_id:UInt64}", "x\x00y", "ü\"'`"]


class World:
    def __init__(self, ch: ClickHouse, a: Project, b: Project) -> None:
        self.ch, self.a, self.b = ch, a, b
        self.events: list[dict[str, Any]] = []  # what was stored, duplicates included
        self.person_of: dict[tuple[int, str], str] = {}
        self.person_props: dict[str, dict[str, Any]] = {}


def row(project_id: int, event: str, distinct_id: str, person_id: str, when: datetime, props: dict[str, Any],
        event_uuid: str | None = None) -> tuple[Any, ...]:  # fmt: skip
    return (event_uuid or str(uuid.uuid4()), project_id, event, distinct_id, person_id, "{}", when,
            orjson.dumps(props).decode(), "", "", "", "web", None, when)  # fmt: skip


@pytest.fixture(scope="module")
async def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    ch = await connect(f"chdb://{tmp_path_factory.mktemp('trends')}/chdb")
    await migrate_clickhouse(ch)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    a = await ensure_project(pool, "trends-a", api_token=f"ta-{uuid.uuid4().hex}", timezone=TZ)
    b = await ensure_project(pool, "trends-b", api_token=f"tb-{uuid.uuid4().hex}")
    await pool.close()
    w = World(ch, a, b)
    rng = random.Random(7)
    rows, ids = [], []
    start = datetime(2026, 10, 28, tzinfo=UTC)
    for project in (a, b):
        persons = {f"user-{n}": str(uuid.uuid4()) for n in range(USERS)}
        # user-0 .. user-99 were merged into user-100 .. user-199: the event says the old person,
        # person_distinct_ids the new one (higher version)
        for n in range(MERGED):
            old, new = persons[f"user-{n}"], persons[f"user-{n + MERGED}"]
            ids.append((project.id, f"user-{n}", old, 0, 0))
            ids.append((project.id, f"user-{n}", new, 1, 0))
            w.person_of[(project.id, f"user-{n}")] = new
        for n in range(MERGED, USERS):
            ids.append((project.id, f"user-{n}", persons[f"user-{n}"], 0, 0))
            w.person_of[(project.id, f"user-{n}")] = persons[f"user-{n}"]
        for _ in range(EVENTS_PER_PROJECT):
            who = f"user-{rng.randrange(USERS)}" if rng.random() < 0.9 else f"anon-{rng.randrange(300)}"
            person = persons.get(who) or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{project.id}:{who}"))
            when = start + timedelta(seconds=rng.randrange(9 * 86400))
            event = rng.choice(["$pageview", "$pageview", "signed_up", "purchase"])
            props = {"plan": rng.choice(["free", "pro", "team"]), "amount": rng.randrange(1, 100),
                     "$current_url": f"https://shop.example/{rng.choice(['a', 'b', HOSTILE[0]])}"}  # fmt: skip
            if rng.random() < 0.1:
                props.pop("amount")
            if rng.random() < 0.8:
                props["$session_id"] = f"s-{who}-{int(when.timestamp()) // 7200}"
            r = row(project.id, event, who, person, when, props)
            rows.append(r)
            w.events.append({"uuid": r[0], "project_id": project.id, "event": event, "distinct_id": who,
                             "person_id": person, "timestamp": when, "properties": props})  # fmt: skip
            if rng.random() < 0.05:  # a redelivered event: same uuid, stored twice
                rows.append(r)
    await ch.insert("events", EVENT_COLUMNS, rows)
    await ch.insert("person_distinct_ids", DISTINCT_ID_COLUMNS, ids)
    person_rows = []
    for (project_id, _), person in sorted(w.person_of.items()):
        if person in w.person_props:
            continue
        tier = rng.choice(["gold", "silver", "bronze"])
        w.person_props[person] = {"tier": tier}
        created = datetime(2026, 1, 1, tzinfo=UTC)
        person_rows.append((person, project_id, '{"tier": "old"}', 1, created, 0, 0))  # superseded
        person_rows.append((person, project_id, orjson.dumps({"tier": tier}).decode(), 1, created, 1, 0))
    await ch.insert("persons", PERSON_COLUMNS, person_rows)
    yield w
    await ch.close()


@pytest.fixture(scope="module")
async def client(
    world: World, pg_dsn: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[TestClient]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    settings = make_settings(admin_api_key=ADMIN)
    async with TestClient(TestServer(create_app(settings, world.ch, pool))) as test_client:
        yield test_client
    await pool.close()


async def trends(client: TestClient, key: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post("/api/trends", json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


def expected(
    w: World, project: Project, body: dict[str, Any], matches: Callable[[dict[str, Any]], bool]
) -> list[float]:
    """The definitions computed directly: one event per uuid, persons after merges, local days."""
    tz = ZoneInfo(project.timezone)
    first, last = date.fromisoformat(body["date_from"]), date.fromisoformat(body["date_to"])
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    seen: set[str] = set()
    events: dict[date, int] = defaultdict(int)
    persons: dict[date, set[str]] = defaultdict(set)
    amounts: dict[date, list[float]] = defaultdict(list)
    for e in w.events:
        if e["uuid"] in seen or e["project_id"] != project.id or e["event"] != body["events"][0]["event"]:
            continue
        seen.add(e["uuid"])
        day = e["timestamp"].astimezone(tz).date()
        if not first <= day <= last or not matches(e["properties"]):
            continue
        events[day] += 1
        persons[day].add(w.person_of.get((project.id, e["distinct_id"]), e["person_id"]))
        if "amount" in e["properties"]:
            amounts[day].append(e["properties"]["amount"])
    measure = body.get("measure", "uniques")
    if measure == "totals":
        return [events[d] for d in days]
    if measure == "uniques":
        return [len(persons[d]) for d in days]
    if measure == "average":
        return [round(events[d] / len(persons[d]), 6) if persons[d] else 0 for d in days]
    if measure == "sum":
        return [sum(amounts[d]) for d in days]
    return [round(sum(amounts[d]) / len(amounts[d]), 6) if amounts[d] else 0 for d in days]


RANGE = {"date_from": "2026-10-29", "date_to": "2026-11-04", "interval": "day"}


@pytest.mark.parametrize("measure", ["uniques", "totals", "average", "sum", "avg"])
async def test_daily_measures_equal_the_definitions(client: TestClient, world: World, measure: str) -> None:
    body = {"events": [{"event": "$pageview"}], "measure": measure, "property": "amount", **RANGE}
    status, answer = await trends(client, world.a.api_key, body)
    assert status == 200, answer
    [series] = answer["series"]
    assert series["labels"] == [f"2026-10-{d}" for d in (29, 30, 31)] + [f"2026-11-0{d}" for d in range(1, 5)]
    assert series["values"] == pytest.approx(expected(world, world.a, body, lambda p: True))


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ([{"property": "plan", "op": "eq", "value": "pro"}], lambda p: p["plan"] == "pro"),
        ([{"property": "plan", "op": "neq", "value": "pro"}], lambda p: p["plan"] != "pro"),
        ([{"property": "amount", "op": "gte", "value": 50}], lambda p: p.get("amount", -1) >= 50),
        ([{"property": "amount", "op": "lt", "value": 10}], lambda p: "amount" in p and p["amount"] < 10),
        (
            [{"property": "plan", "op": "in", "value": ["free", "team"]}],
            lambda p: p["plan"] in ("free", "team"),
        ),
        (
            [{"property": "$current_url", "op": "contains", "value": "DROP"}],
            lambda p: "drop" in p["$current_url"].lower(),
        ),
        ([{"property": "amount", "op": "is_not_set"}], lambda p: "amount" not in p),
        (
            [{"property": "amount", "op": "is_set"}, {"property": "plan", "op": "eq", "value": "team"}],
            lambda p: "amount" in p and p["plan"] == "team",
        ),
    ],
)
async def test_event_filters(
    client: TestClient, world: World, filters: list[dict[str, Any]], matches: Any
) -> None:
    body = {"events": [{"event": "purchase", "filters": filters}], "measure": "totals", **RANGE}
    status, answer = await trends(client, world.a.api_key, body)
    assert status == 200, answer
    assert answer["series"][0]["values"] == expected(world, world.a, body, matches)


async def test_projects_never_see_each_other(client: TestClient, world: World) -> None:
    body = {"events": [{"event": "$pageview"}], "measure": "totals", **RANGE}
    _, a = await trends(client, world.a.api_key, body)
    _, b = await trends(client, world.b.api_key, body)
    assert a["series"][0]["values"] == expected(world, world.a, body, lambda p: True)
    assert b["series"][0]["values"] == expected(world, world.b, body, lambda p: True)


async def test_hostile_strings_are_data(client: TestClient, world: World) -> None:
    for text in HOSTILE:
        body = {
            "events": [{"event": text, "filters": [{"property": text, "op": "eq", "value": text}]}],
            **RANGE,
        }
        status, answer = await trends(client, world.a.api_key, body)
        assert status == 400 and answer["code"] == "unknown_event", answer
    assert (await world.ch.query("SELECT count() > 0 AS ok FROM events"))[0]["ok"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"measure": "median"}, "measure"),
        ({"interval": "fortnight"}, "interval"),
        ({"date_from": "2026-11-05"}, "date_to"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_from": "2020-01-01"}, "date_from..date_to"),
        ({"events": []}, "events"),
        ({"events": [{"event": "x", "filters": [{"property": "a", "op": "like", "value": "b"}]}]}, "op"),
        ({"events": [{"event": "x", "filters": [{"property": "a", "op": "gt", "value": "b"}]}]}, "value"),
        ({"measure": "sum"}, "property"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(
    client: TestClient, world: World, change: dict[str, Any], field: str
) -> None:
    body = {"events": [{"event": "$pageview"}], "measure": "uniques", **RANGE, **change}
    status, answer = await trends(client, world.a.api_key, body)
    assert status == 400 and field in answer["detail"], answer


async def test_wrong_key_is_401(client: TestClient) -> None:
    status, answer = await trends(client, "nope", {"events": [{"event": "x"}], **RANGE})
    assert status == 401 and answer["code"] == "invalid_api_key"


async def test_projects_me_and_create(client: TestClient, world: World) -> None:
    response = await client.get("/api/projects/me", headers={"Authorization": f"Bearer {world.a.api_key}"})
    assert response.status == 200 and (await response.json())["timezone"] == TZ
    admin = {"Authorization": f"Bearer {ADMIN}"}
    response = await client.post(
        "/api/projects", json={"name": "new", "timezone": "Asia/Kolkata"}, headers=admin
    )
    created = await response.json()
    assert response.status == 201 and created["timezone"] == "Asia/Kolkata" and created["api_key"]
    response = await client.get("/api/projects/me", headers={"Authorization": f"Bearer {created['api_key']}"})
    assert (await response.json())["id"] == created["id"]
    response = await client.post(
        "/api/projects", json={"name": "x", "timezone": "Mars/Olympus"}, headers=admin
    )
    assert response.status == 400 and (await response.json())["code"] == "invalid_timezone"
    response = await client.post("/api/projects", json={"name": "x"}, headers={"Authorization": "Bearer no"})
    assert response.status == 401


def funnel_reference(
    w: World, project: Project, steps: list[str], window: int, first: date, last: date
) -> list[int]:
    """windowFunnel by hand: per person, the deepest step over every step-1 start inside the range."""
    tz = ZoneInfo(project.timezone)
    seen: set[str] = set()
    by_person: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in w.events:
        if e["uuid"] in seen or e["project_id"] != project.id:
            continue
        seen.add(e["uuid"])
        person = w.person_of.get((project.id, e["distinct_id"]), e["person_id"])
        by_person[person].append((int(e["timestamp"].timestamp()), e["event"]))
    reached = [0] * len(steps)
    for events in by_person.values():
        events.sort()
        best = 0
        for i, (t0, name) in enumerate(events):
            day = datetime.fromtimestamp(t0, tz).date()
            if name != steps[0] or not first <= day <= last:
                continue
            level = 1
            for t, other in events[i + 1 :]:
                if t - t0 > window or level == len(steps):
                    break
                if other == steps[level] and t > t0:
                    level += 1
            best = max(best, level)
        for k in range(best):
            reached[k] += 1
    return reached


@pytest.mark.parametrize("window", [3600, 86400, 3 * 86400])
async def test_funnel_counts_follow_window_funnel(client: TestClient, world: World, window: int) -> None:
    steps = ["$pageview", "signed_up", "purchase"]
    body = {"steps": [{"event": s} for s in steps], "window_seconds": window, **RANGE}
    response = await client.post(
        "/api/funnels", json=body, headers={"Authorization": f"Bearer {world.a.api_key}"}
    )
    answer = await response.json()
    assert response.status == 200, answer
    expected_counts = funnel_reference(world, world.a, steps, window, date(2026, 10, 29), date(2026, 11, 4))
    assert [s["count"] for s in answer["steps"]] == expected_counts
    first = expected_counts[0]
    assert answer["steps"][2]["conversion_from_first"] == pytest.approx(expected_counts[2] / first, abs=1e-6)
    assert answer["steps"][2]["conversion_from_previous"] == pytest.approx(
        expected_counts[2] / expected_counts[1], abs=1e-6
    )


async def test_funnel_bad_requests(client: TestClient, world: World) -> None:
    headers = {"Authorization": f"Bearer {world.a.api_key}"}
    for body, field in [
        ({"steps": [{"event": "a"}], "window_seconds": 60, **RANGE}, "steps"),
        ({"steps": [{"event": "a"}, {"event": "b"}], "window_seconds": 0, **RANGE}, "window_seconds"),
        (
            {
                "steps": [{"event": "a"}, {"event": "b"}],
                "window_seconds": 60,
                **RANGE,
                "date_to": "2020-01-01",
            },
            "date_to",
        ),
    ]:
        response = await client.post("/api/funnels", json=body, headers=headers)
        assert response.status == 400 and field in (await response.json())["detail"]


def retention_reference(
    w: World, project: Project, start: str, returning: str, periods: int, first: date, last: date
) -> list[dict[str, Any]]:
    tz = ZoneInfo(project.timezone)
    seen: set[str] = set()
    cohort_of: dict[str, date] = {}
    returns: dict[str, set[date]] = defaultdict(set)
    for e in sorted(w.events, key=lambda e: e["timestamp"]):
        if e["uuid"] in seen or e["project_id"] != project.id:
            continue
        seen.add(e["uuid"])
        person = w.person_of.get((project.id, e["distinct_id"]), e["person_id"])
        day = e["timestamp"].astimezone(tz).date()
        if e["event"] == start and first <= day <= last and person not in cohort_of:
            cohort_of[person] = day
        if returning in ("$any", e["event"]):
            returns[person].add(day)
    matrix: dict[date, list[int]] = {}
    for person, cohort in cohort_of.items():
        values = matrix.setdefault(cohort, [0] * (periods + 1))
        values[0] += 1
        for k in range(1, periods + 1):
            if cohort + timedelta(days=k) in returns[person]:
                values[k] += 1
    return [{"date": d.isoformat(), "size": v[0], "values": v} for d, v in sorted(matrix.items())]


@pytest.mark.parametrize("returning", ["purchase", "$any"])
async def test_daily_retention_matrix(client: TestClient, world: World, returning: str) -> None:
    body = {"start_event": "signed_up", "return_event": returning, "period": "day", "periods": 4,
            "date_from": "2026-10-28", "date_to": "2026-11-02"}  # fmt: skip
    response = await client.post(
        "/api/retention", json=body, headers={"Authorization": f"Bearer {world.a.api_key}"}
    )
    answer = await response.json()
    assert response.status == 200, answer
    assert answer["cohorts"] == retention_reference(
        world, world.a, "signed_up", returning, 4, date(2026, 10, 28), date(2026, 11, 2)
    )


def sessions_reference(
    w: World, project: Project, first: date, last: date, plan: str | None
) -> dict[str, list[Any]]:
    tz = ZoneInfo(project.timezone)
    seen: set[str] = set()
    times: dict[str, list[datetime]] = defaultdict(list)
    for e in w.events:
        if e["uuid"] in seen or e["project_id"] != project.id:
            continue
        seen.add(e["uuid"])
        day = e["timestamp"].astimezone(tz).date()
        session = e["properties"].get("$session_id")
        if session and first <= day <= last and (plan is None or e["properties"]["plan"] == plan):
            times[session].append(e["timestamp"])
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    per_day: dict[date, list[tuple[float, bool]]] = defaultdict(list)
    for stamps in times.values():
        per_day[min(stamps).astimezone(tz).date()].append(
            ((max(stamps) - min(stamps)).total_seconds(), len(stamps) == 1)
        )
    return {
        "labels": [d.isoformat() for d in days],
        "sessions": [len(per_day[d]) for d in days],
        "avg_duration_seconds": [
            sum(x for x, _ in per_day[d]) / len(per_day[d]) if per_day[d] else 0 for d in days
        ],
        "bounce_rate": [
            sum(1 for _, b in per_day[d] if b) / len(per_day[d]) if per_day[d] else 0 for d in days
        ],
    }


@pytest.mark.parametrize("plan", [None, "pro"])
async def test_sessions_count_duration_and_bounce(client: TestClient, world: World, plan: str | None) -> None:
    body: dict[str, Any] = {"interval": "day", "date_from": "2026-10-29", "date_to": "2026-11-04"}
    if plan:
        body["filters"] = [{"property": "plan", "op": "eq", "value": plan}]
    response = await client.post(
        "/api/sessions", json=body, headers={"Authorization": f"Bearer {world.a.api_key}"}
    )
    answer = await response.json()
    assert response.status == 200, answer
    want = sessions_reference(world, world.a, date(2026, 10, 29), date(2026, 11, 4), plan)
    assert answer["labels"] == want["labels"] and answer["sessions"] == want["sessions"]
    assert answer["avg_duration_seconds"] == pytest.approx(want["avg_duration_seconds"], abs=1e-5)
    assert answer["bounce_rate"] == pytest.approx(want["bounce_rate"], abs=1e-5)


async def all_pages(client: TestClient, url: str, key: str, params: dict[str, str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=query, headers={"Authorization": f"Bearer {key}"})
        answer = await response.json()
        assert response.status == 200, answer
        events += answer["events"]
        cursor = answer["next_cursor"]
        if cursor is None:
            return events


async def test_events_newest_first_filtered_and_paged(client: TestClient, world: World) -> None:
    params = {"event": "purchase", "filters": orjson.dumps([{"property": "plan", "op": "eq", "value": "pro"}]).decode(),
              "limit": "37"}  # fmt: skip
    events = await all_pages(client, "/api/events", world.a.api_key, params)
    unique = {e["uuid"]: e for e in world.events if e["project_id"] == world.a.id}
    want = [e for e in unique.values() if e["event"] == "purchase" and e["properties"]["plan"] == "pro"]
    assert sorted(e["uuid"] for e in events) == sorted(e["uuid"] for e in want)
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    response = await client.get(
        "/api/events", params={"limit": "0"}, headers={"Authorization": f"Bearer {world.a.api_key}"}
    )
    assert response.status == 400 and "limit" in (await response.json())["detail"]


async def test_person_profile_with_all_ids_and_events(client: TestClient, world: World, pg_dsn: str) -> None:
    person = world.person_of[(world.a.id, "user-0")]  # user-0 was merged into user-100's person
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "INSERT INTO persons (id, project_id, properties, is_identified, version) VALUES ($1, $2, $3, true, 2)",
            uuid.UUID(person), world.a.id, '{"plan": "team"}',
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO person_distinct_ids (project_id, distinct_id, person_id, version) VALUES ($1, $2, $3, 1)",
            [(world.a.id, d, uuid.UUID(person)) for d in ("user-0", "user-100")],
        )
    finally:
        await conn.close()
    response = await client.get(
        "/api/persons/user-0", params={"limit": "20"}, headers={"Authorization": f"Bearer {world.a.api_key}"}
    )
    answer = await response.json()
    assert response.status == 200, answer
    assert answer["id"] == person and answer["distinct_ids"] == ["user-0", "user-100"]
    assert answer["properties"] == {"plan": "team"}
    events = (
        answer["events"]
        + await all_pages(
            client, "/api/persons/user-0", world.a.api_key, {"limit": "20", "cursor": answer["next_cursor"]}
        )
        if answer["next_cursor"]
        else answer["events"]
    )
    unique = {
        e["uuid"]
        for e in world.events
        if e["project_id"] == world.a.id and e["distinct_id"] in ("user-0", "user-100")
    }
    assert {e["uuid"] for e in events} == unique and len(events) == len(unique)
    response = await client.get("/api/persons/nobody", headers={"Authorization": f"Bearer {world.a.api_key}"})
    assert response.status == 404
    response = await client.get("/api/persons/user-0", headers={"Authorization": f"Bearer {world.b.api_key}"})
    assert response.status == 404, "another project's person is invisible"


def paths_reference(
    w: World, project: Project, start: str | None, steps: int, first: date, last: date
) -> dict[tuple[str, str], int]:
    tz = ZoneInfo(project.timezone)
    unique = {e["uuid"]: e for e in w.events if e["project_id"] == project.id}
    sessions: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    for e in unique.values():
        session = e["properties"].get("$session_id")
        if session and first <= e["timestamp"].astimezone(tz).date() <= last:
            sessions[session].append((e["timestamp"], e["uuid"], e["event"]))
    edges: dict[tuple[str, str], int] = defaultdict(int)
    for events in sessions.values():
        names = [name for _, _, name in sorted(events)]
        if start is not None:
            if start not in names:
                continue
            names = names[names.index(start) :]
        names = names[:steps]
        for i in range(len(names) - 1):
            edges[(f"{i + 1}_{names[i]}", f"{i + 2}_{names[i + 1]}")] += 1
    return dict(edges)


@pytest.mark.parametrize("start", [None, "signed_up"])
async def test_paths_edges_count_sessions(client: TestClient, world: World, start: str | None) -> None:
    body: dict[str, Any] = {"steps": 4, "limit": 1000, "date_from": "2026-10-29", "date_to": "2026-11-04"}
    if start:
        body["start_event"] = start
    response = await client.post(
        "/api/paths", json=body, headers={"Authorization": f"Bearer {world.a.api_key}"}
    )
    answer = await response.json()
    assert response.status == 200, answer
    got = {(e["source"], e["target"]): e["value"] for e in answer["edges"]}
    assert got == paths_reference(world, world.a, start, 4, date(2026, 10, 29), date(2026, 11, 4))
    values = [e["value"] for e in answer["edges"]]
    assert values == sorted(values, reverse=True)
    too_many = {**body, "steps": 11}
    response = await client.post(
        "/api/paths", json=too_many, headers={"Authorization": f"Bearer {world.a.api_key}"}
    )
    assert response.status == 400 and "steps" in (await response.json())["detail"]


def unique_events(
    w: World, project: Project, event: str | None, first: date, last: date
) -> list[dict[str, Any]]:
    tz = ZoneInfo(project.timezone)
    seen: dict[str, dict[str, Any]] = {}
    for e in w.events:
        if e["project_id"] == project.id and (event is None or e["event"] == event):
            if first <= e["timestamp"].astimezone(tz).date() <= last:
                seen.setdefault(e["uuid"], e)
    return list(seen.values())


FIRST, LAST = date(2026, 10, 29), date(2026, 11, 4)


def person(w: World, project: Project, e: dict[str, Any]) -> str:
    return w.person_of.get((project.id, e["distinct_id"]), e["person_id"])


async def test_active_percent(client: TestClient, world: World) -> None:
    body = {"events": [{"event": "purchase"}], "measure": "active_percent", **RANGE}
    status, answer = await trends(client, world.a.api_key, body)
    assert status == 200, answer
    tz = ZoneInfo(TZ)
    did, anyone = defaultdict(set), defaultdict(set)
    for e in unique_events(world, world.a, None, FIRST, LAST):
        day = e["timestamp"].astimezone(tz).date()
        anyone[day].add(person(world, world.a, e))
        if e["event"] == "purchase":
            did[day].add(person(world, world.a, e))
    days = [FIRST + timedelta(days=n) for n in range(7)]
    want = [100 * len(did[d]) / len(anyone[d]) if anyone[d] else 0 for d in days]
    assert answer["series"][0]["values"] == pytest.approx(want, abs=1e-5)


async def test_frequency(client: TestClient, world: World) -> None:
    body = {"events": [{"event": "$pageview"}], "measure": "frequency", **RANGE}
    status, answer = await trends(client, world.a.api_key, body)
    assert status == 200, answer
    times: dict[str, int] = defaultdict(int)
    for e in unique_events(world, world.a, "$pageview", FIRST, LAST):
        times[person(world, world.a, e)] += 1
    want = [0] * 10
    for n in times.values():
        want[min(n, 10) - 1] += 1
    assert answer["series"][0]["labels"] == [*map(str, range(1, 10)), "10+"]
    assert answer["series"][0]["values"] == want


async def test_distribution_of_a_property(client: TestClient, world: World) -> None:
    body = {"events": [{"event": "purchase"}], "measure": "distribution", "property": "plan", **RANGE}
    status, answer = await trends(client, world.a.api_key, body)
    assert status == 200, answer
    counts: dict[str, int] = defaultdict(int)
    for e in unique_events(world, world.a, "purchase", FIRST, LAST):
        counts[orjson.dumps(e["properties"]["plan"]).decode()] += 1
    got = dict(zip(answer["series"][0]["labels"], answer["series"][0]["values"], strict=True))
    assert got == counts


@pytest.mark.parametrize("kind", ["event", "person"])
async def test_breakdown_by_event_or_person_property(client: TestClient, world: World, kind: str) -> None:
    prop = "plan" if kind == "event" else "tier"
    body = {"events": [{"event": "$pageview"}], "measure": "uniques", **RANGE,
            "breakdown": {"type": kind, "property": prop, "limit": 2}}  # fmt: skip
    status, answer = await trends(client, world.a.api_key, body)
    assert status == 200, answer
    tz = ZoneInfo(TZ)
    per_value: dict[str, dict[date, set[str]]] = defaultdict(lambda: defaultdict(set))
    totals: dict[str, int] = defaultdict(int)
    for e in unique_events(world, world.a, "$pageview", FIRST, LAST):
        who = person(world, world.a, e)
        value = e["properties"][prop] if kind == "event" else world.person_props.get(who, {}).get(prop, "")
        per_value[value][e["timestamp"].astimezone(tz).date()].add(who)
        totals[value] += 1
    top = sorted(totals, key=lambda v: (-totals[v], v))[:2]
    assert [s["breakdown_value"] for s in answer["series"]] == top
    days = [FIRST + timedelta(days=n) for n in range(7)]
    for s in answer["series"]:
        assert s["values"] == [len(per_value[s["breakdown_value"]][d]) for d in days]


async def test_person_property_filter(client: TestClient, world: World) -> None:
    body = {"events": [{"event": "signed_up", "filters": [{"type": "person", "property": "tier", "op": "eq",
            "value": "gold"}]}], "measure": "totals", **RANGE}  # fmt: skip
    status, answer = await trends(client, world.a.api_key, body)
    assert status == 200, answer
    tz = ZoneInfo(TZ)
    per_day: dict[date, int] = defaultdict(int)
    for e in unique_events(world, world.a, "signed_up", FIRST, LAST):
        if world.person_props.get(person(world, world.a, e), {}).get("tier") == "gold":
            per_day[e["timestamp"].astimezone(tz).date()] += 1
    assert answer["series"][0]["values"] == [per_day[FIRST + timedelta(days=n)] for n in range(7)]


async def test_result_cache_hits_refreshes_and_never_crosses_projects(
    client: TestClient, world: World
) -> None:
    body = {"events": [{"event": "signed_up"}], "measure": "totals", "date_from": "2026-10-30",
            "date_to": "2026-11-02"}  # fmt: skip

    async def ask(key: str, extra: dict[str, Any] | None = None) -> tuple[str, Any]:
        response = await client.post(
            "/api/trends", json={**body, **(extra or {})}, headers={"Authorization": f"Bearer {key}"}
        )
        return response.headers["X-Cache"], await response.json()

    first = await ask(world.a.api_key)
    again = await ask(world.a.api_key)
    assert (first[0], again[0]) == ("miss", "hit") and first[1] == again[1]
    assert (await ask(world.a.api_key, {"refresh": True}))[0] == "miss"
    other = await ask(world.b.api_key)
    assert other[0] == "miss" and other[1] != first[1]


async def test_funnel_breakdown_by_the_first_step_events_property(client: TestClient, world: World) -> None:
    steps = ["$pageview", "purchase"]
    body = {"steps": [{"event": s} for s in steps], "window_seconds": 3600, **RANGE,
            "breakdown": {"type": "event", "property": "plan", "limit": 3}}  # fmt: skip
    response = await client.post(
        "/api/funnels", json=body, headers={"Authorization": f"Bearer {world.a.api_key}"}
    )
    answer = await response.json()
    assert response.status == 200, answer
    first_plan: dict[str, tuple[datetime, str]] = {}
    for e in unique_events(world, world.a, "$pageview", FIRST, LAST):
        who = person(world, world.a, e)
        if who not in first_plan or e["timestamp"] < first_plan[who][0]:
            first_plan[who] = (e["timestamp"], e["properties"]["plan"])
    levels = funnel_levels(world, world.a, steps, 3600, FIRST, LAST)
    want: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for who, level in levels.items():
        for k in range(level):
            want[first_plan[who][1]][k] += 1
    got = {b["breakdown_value"]: [s["count"] for s in b["steps"]] for b in answer["breakdowns"]}
    assert got == dict(want)
    assert [s["count"] for s in answer["steps"]] == [
        sum(v[0] for v in want.values()),
        sum(v[1] for v in want.values()),
    ]


def funnel_levels(
    w: World, project: Project, steps: list[str], window: int, first: date, last: date
) -> dict[str, int]:
    tz = ZoneInfo(project.timezone)
    seen: set[str] = set()
    by_person: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in w.events:
        if e["uuid"] in seen or e["project_id"] != project.id:
            continue
        seen.add(e["uuid"])
        by_person[person(w, project, e)].append((int(e["timestamp"].timestamp()), e["event"]))
    levels = {}
    for who, events in by_person.items():
        events.sort()
        best = 0
        for i, (t0, name) in enumerate(events):
            if name != steps[0] or not first <= datetime.fromtimestamp(t0, tz).date() <= last:
                continue
            level = 1
            for t, other in events[i + 1 :]:
                if t - t0 > window or level == len(steps):
                    break
                if other == steps[level] and t > t0:
                    level += 1
            best = max(best, level)
        if best:
            levels[who] = best
    return levels


async def test_hourly_buckets_across_the_autumn_dst_change(client: TestClient, world: World) -> None:
    body = {"events": [{"event": "$pageview"}], "measure": "totals", "interval": "hour",
            "date_from": "2026-11-01", "date_to": "2026-11-01"}  # fmt: skip
    status, answer = await trends(client, world.a.api_key, body)
    assert status == 200, answer
    [series] = answer["series"]
    assert len(series["labels"]) == 25, "New York's 1 November 2026 has 25 hours"
    assert series["labels"][1:3] == ["2026-11-01T01:00-04:00", "2026-11-01T01:00-05:00"]
    tz = ZoneInfo(TZ)
    per_hour: dict[str, int] = defaultdict(int)
    for e in unique_events(world, world.a, "$pageview", date(2026, 11, 1), date(2026, 11, 1)):
        start = e["timestamp"].replace(minute=0, second=0, microsecond=0).astimezone(tz)
        per_hour[start.isoformat(timespec="minutes")] += 1
    assert series["values"] == [per_hour[lab] for lab in series["labels"]]


def funnel_chains(
    w: World, project: Project, steps: list[str], window: int, first: date, last: date
) -> list[list[int]]:
    """Per person, the times of the chain reaching their deepest step (first such step-1 start, earliest matches)."""
    tz = ZoneInfo(project.timezone)
    seen: set[str] = set()
    by_person: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in w.events:
        if e["uuid"] in seen or e["project_id"] != project.id:
            continue
        seen.add(e["uuid"])
        by_person[person(w, project, e)].append((int(e["timestamp"].timestamp()), e["event"]))
    chains = []
    for events in by_person.values():
        events.sort()
        best: list[int] = []
        for i, (t0, name) in enumerate(events):
            if name != steps[0] or not first <= datetime.fromtimestamp(t0, tz).date() <= last:
                continue
            chain = [t0]
            for t, other in events[i + 1 :]:
                if len(chain) == len(steps) or t - t0 > window:
                    break
                if other == steps[len(chain)] and t > t0:
                    chain.append(t)
            if len(chain) > len(best):
                best = chain
        if best:
            chains.append(best)
    return chains


async def test_funnel_median_seconds_between_steps(client: TestClient, world: World) -> None:
    steps = ["$pageview", "signed_up", "purchase"]
    body = {"steps": [{"event": s} for s in steps], "window_seconds": 86400, **RANGE}
    response = await client.post(
        "/api/funnels", json=body, headers={"Authorization": f"Bearer {world.a.api_key}"}
    )
    answer = await response.json()
    assert response.status == 200, answer
    chains = funnel_chains(world, world.a, steps, 86400, FIRST, LAST)
    assert [s["count"] for s in answer["steps"]] == [sum(1 for c in chains if len(c) > k) for k in range(3)]
    assert answer["steps"][0]["median_seconds_from_previous"] is None
    for k in (1, 2):
        want = statistics.median(c[k] - c[k - 1] for c in chains if len(c) > k)
        assert answer["steps"][k]["median_seconds_from_previous"] == pytest.approx(want)

"""persons against a real Postgres database created for the run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from workers.kafka import Message, Record
from workers.persons import PersonStore, make_process
from workers.projects import ensure_project
from workers.results import DeadLetter, Ok

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def project_id(pool: asyncpg.Pool) -> int:
    project = await ensure_project(pool, "persons-test", api_token=f"tok-{uuid.uuid4().hex}")
    return project.id


def raw(project_id: int, distinct_id: str, offset: int = 0) -> Message:
    event = {
        "uuid": str(uuid.uuid4()),
        "event": "$pageview",
        "distinct_id": distinct_id,
        "project_id": project_id,
    }
    return Message("events_raw", 0, offset, f"tok:{distinct_id}".encode(), orjson.dumps(event))


async def test_first_sight_creates_one_person_and_later_events_reuse_it(
    pool: asyncpg.Pool, project_id: int
) -> None:
    process = make_process(PersonStore(pool))
    first = await process([raw(project_id, "alice"), raw(project_id, "alice", 1), raw(project_id, "bob", 2)])
    assert all(isinstance(r, Ok) for r in first)
    people = [orjson.loads(r.value.value)["person_id"] for r in first]  # type: ignore[union-attr]
    assert people[0] == people[1] != people[2]

    # a fresh store (no cache) finds the same persons in Postgres
    again = await make_process(PersonStore(pool))([raw(project_id, "alice", 3)])
    assert orjson.loads(again[0].value.value)["person_id"] == people[0]  # type: ignore[union-attr]
    rows = await pool.fetch(
        "SELECT distinct_id, person_id FROM person_distinct_ids WHERE project_id = $1 AND distinct_id = ANY($2)",
        project_id,
        ["alice", "bob"],
    )
    assert {r["distinct_id"]: str(r["person_id"]) for r in rows} == {"alice": people[0], "bob": people[2]}


async def test_output_keeps_the_event_and_key_and_adds_the_person(
    pool: asyncpg.Pool, project_id: int
) -> None:
    message = raw(project_id, "carol")
    [result] = await make_process(PersonStore(pool))([message])
    assert isinstance(result, Ok)
    record: Record = result.value
    assert record.key == message.key
    event = orjson.loads(record.value)
    assert {k: v for k, v in event.items() if k != "person_id"} == orjson.loads(message.value)
    uuid.UUID(event["person_id"])


async def test_two_workers_racing_on_new_ids_create_one_person_per_id(
    pool: asyncpg.Pool, project_id: int
) -> None:
    ids = [f"race-{i}" for i in range(300)]
    stores = [PersonStore(pool) for _ in range(4)]
    results = await asyncio.gather(*(s.resolve([(project_id, d) for d in reversed(ids)]) for s in stores))
    for result in results[1:]:
        assert result == results[0]
    count = await pool.fetchval(
        "SELECT count(DISTINCT person_id) FROM person_distinct_ids WHERE project_id = $1 AND distinct_id LIKE 'race-%'",
        project_id,
    )
    orphans = await pool.fetchval(
        "SELECT count(*) FROM persons p WHERE project_id = $1"
        " AND NOT EXISTS (SELECT 1 FROM person_distinct_ids d WHERE d.person_id = p.id)",
        project_id,
    )
    assert count == 300
    assert orphans == 0


async def test_bad_messages_are_dead_lettered_with_a_reason(pool: asyncpg.Pool, project_id: int) -> None:
    batch = [
        Message("events_raw", 0, 0, None, b"{not json"),
        Message("events_raw", 0, 1, None, b"[1, 2]"),
        Message("events_raw", 0, 2, None, orjson.dumps({"project_id": project_id, "distinct_id": ""})),
        Message("events_raw", 0, 3, None, orjson.dumps({"project_id": "7", "distinct_id": "x"})),
        Message("events_raw", 0, 4, None, orjson.dumps({"project_id": 987654321, "distinct_id": "x"})),
        raw(project_id, "dave", 5),
    ]
    results = await make_process(PersonStore(pool))(batch)
    reasons = [r.reason if isinstance(r, DeadLetter) else "ok" for r in results]
    assert reasons == [
        "invalid_json",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "unknown_project",
        "ok",
    ]

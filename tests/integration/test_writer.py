"""The writer's steps against chDB in a temp dir: rows from each topic, duplicate delivery stored once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from workers.clickhouse import ClickHouse, connect
from workers.kafka import EVENTS, PERSON_DISTINCT_IDS, PERSONS, Message
from workers.migrate import migrate_clickhouse
from workers.results import DeadLetter, Ok
from workers.sanitize import Limits
from workers.writer import ProjectZones, TablesSink, make_to_rows

pytestmark = pytest.mark.clickhouse


async def no_projects() -> dict[int, str]:
    return {}  # these tests write no per-minute counts


to_rows = make_to_rows(Limits(64, 10_000, 1024), ProjectZones(no_projects))


@pytest.fixture
async def ch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClickHouse]:
    ch = await connect(f"chdb://{tmp_path_factory.mktemp('writer')}/chdb")
    await migrate_clickhouse(ch)
    yield ch
    await ch.close()


def event(n: int, person_id: str) -> Message:
    body = {
        "uuid": str(uuid.uuid4()), "event": "$pageview", "distinct_id": f"user-{n % 3}", "project_id": 1,
        "person_id": person_id, "person_properties": {"plan": "pro"}, "timestamp": "2026-11-01T10:00:00.123456Z",
        "received_at": "2026-11-01T10:00:01Z", "sent_at": None, "ip": "127.0.0.1", "lib": "web",
        "properties": {"n": n, "$current_url": "https://x/"}, "set": None, "set_once": None,
    }  # fmt: skip
    return Message(EVENTS, 0, n, b"k", orjson.dumps(body))


async def test_migrations_run_once(ch: ClickHouse) -> None:
    assert await migrate_clickhouse(ch) == []
    tables = {
        r["name"] for r in await ch.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
    }
    assert {"events", "persons", "person_distinct_ids", "schema_migrations"} <= tables


async def test_duplicate_delivery_of_a_batch_leaves_one_row_per_uuid_after_final(ch: ClickHouse) -> None:
    person = str(uuid.uuid4())
    batch = [event(n, person) for n in range(50)]
    sink = TablesSink(ch)
    for _ in range(2):  # the batch is redelivered after a crash before the commit
        results = await to_rows(batch)
        await sink.write([r.value for r in results if isinstance(r, Ok)])
    rows = await ch.query("SELECT count() AS n, uniqExact(uuid) AS u FROM events FINAL")
    assert rows == [{"n": 50, "u": 50}]
    [row] = await ch.query(
        "SELECT person_id, person_properties, timestamp, properties FROM events FINAL LIMIT 1"
    )
    assert row["person_id"] == person and orjson.loads(row["person_properties"]) == {"plan": "pro"}
    assert row["timestamp"] == "2026-11-01 10:00:00.123456"


async def test_persons_and_distinct_ids_keep_the_highest_version(ch: ClickHouse) -> None:
    person = str(uuid.uuid4())

    def person_message(version: int, plan: str, deleted: bool = False) -> Message:
        body = {"id": person, "project_id": 1, "properties": {"plan": plan}, "is_identified": True,
                "created_at": "2026-01-01T00:00:00+00:00", "version": version, "is_deleted": deleted}  # fmt: skip
        return Message(PERSONS, 0, version, person.encode(), orjson.dumps(body))

    def id_message(version: int, owner: str) -> Message:
        body = {
            "project_id": 1,
            "distinct_id": "d1",
            "person_id": owner,
            "version": version,
            "is_deleted": False,
        }
        return Message(PERSON_DISTINCT_IDS, 0, version, b"1:d1", orjson.dumps(body))

    other = str(uuid.uuid4())
    batch = [
        person_message(2, "team"),
        person_message(1, "free"),
        id_message(3, other),
        id_message(1, person),
    ]
    results = await to_rows(batch)
    await TablesSink(ch).write([r.value for r in results if isinstance(r, Ok)])
    assert await ch.query("SELECT properties, version FROM persons FINAL") == [
        {"properties": '{"plan":"team"}', "version": 2}
    ]
    assert await ch.query(
        "SELECT distinct_id, toString(argMax(person_id, version)) AS p FROM person_distinct_ids GROUP BY distinct_id"
    ) == [{"distinct_id": "d1", "p": other}]


async def test_malformed_messages_are_dead_lettered_with_a_reason() -> None:
    good = event(1, str(uuid.uuid4()))
    bad = [
        Message(EVENTS, 0, 1, None, b"{nope"),
        Message(EVENTS, 0, 2, None, orjson.dumps({"project_id": 1, "event": "x", "distinct_id": "d"})),
        Message(PERSONS, 0, 3, None, orjson.dumps({"id": "not-a-uuid", "project_id": 1, "properties": {}})),
        Message(PERSON_DISTINCT_IDS, 0, 4, None, orjson.dumps({"project_id": 1, "distinct_id": "d"})),
    ]
    results = await to_rows([good, *bad])
    assert isinstance(results[0], Ok)
    assert results[1:] == [
        DeadLetter(
            "invalid_json", "events: unexpected character, expected a string key: line 1 column 2 (char 1)"
        ),
        DeadLetter("missing_field", "events: uuid: missing"),
        DeadLetter("invalid_field", "persons: id: not a UUID"),
        DeadLetter("missing_field", "person_distinct_ids: person_id: missing"),
    ]

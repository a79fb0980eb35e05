"""Two persons workers in one consumer group over 4 partitions, 10,000 events where many users identify and
alias across devices: the final persons equal a sequential pure-Python model of PostHog's rules, no
distinct id has two persons, and ClickHouse's person_distinct_ids (written by the real writer) agrees."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.components import Tansu, create_database, drop_database, wait_until
from workers import persons, writer
from workers.clickhouse import connect
from workers.kafka import EVENTS, EVENTS_RAW, Record, ensure_topics, start_producer
from workers.migrate import migrate_postgres
from workers.projects import ensure_project
from workers.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.clickhouse, pytest.mark.slow]

USERS = 600
SEED = 20261122


@dataclass
class Model:
    """PostHog's rules applied one event at a time, written independently of workers.identity."""

    person_of: dict[str, int] = field(default_factory=dict)
    properties: dict[int, dict[str, Any]] = field(default_factory=dict)
    identified: dict[int, bool] = field(default_factory=dict)
    next_id: int = 0

    def _new(self, *distinct_ids: str) -> int:
        self.next_id += 1
        self.properties[self.next_id], self.identified[self.next_id] = {}, False
        for d in distinct_ids:
            self.person_of[d] = self.next_id
        return self.next_id

    def apply(self, event: dict[str, Any]) -> None:
        me, props = event["distinct_id"], event["properties"]
        other = props.get("$anon_distinct_id") or props.get("alias")
        if other is None:
            person = self.person_of.get(me) or self._new(me)
        else:
            mine, theirs = self.person_of.get(me), self.person_of.get(other)
            if mine is None and theirs is None:
                person = self._new(me, other)
            elif mine is None:
                person = self.person_of[me] = theirs  # type: ignore[assignment]
            elif theirs is None:
                person = self.person_of[other] = mine
            elif mine == theirs or self.identified[theirs]:
                person = mine
            else:
                self.properties[mine] = {**self.properties.pop(theirs), **self.properties[mine]}
                del self.identified[theirs]
                for d, p in self.person_of.items():
                    if p == theirs:
                        self.person_of[d] = mine
                person = mine
            self.identified[person] = True
        current = self.properties[person]
        for key, value in (props.get("$set_once") or {}).items():
            current.setdefault(key, value)
        current.update(props.get("$set") or {})

    def groups(self) -> dict[frozenset[str], dict[str, Any]]:
        members: dict[int, set[str]] = {}
        for d, p in self.person_of.items():
            members.setdefault(p, set()).add(d)
        return {frozenset(ids): self.properties[p] for p, ids in members.items()}


def generate(project_id: int, token: str) -> list[dict[str, Any]]:
    """Per user: a few devices browsing anonymously, then identify (some also alias a second id).

    Every key sets only properties named after itself, so the final state does not depend on how the
    partitions interleave: the order within a key is Kafka's, the order across keys is anybody's.
    """
    rng = random.Random(SEED)
    streams: list[list[dict[str, Any]]] = []
    for u in range(USERS):
        user = f"user-{u}"
        devices = [f"anon-{u}-{d}" for d in range(rng.randint(1, 3))]
        for device in devices:
            stream = [
                {"distinct_id": device, "event": "$pageview",
                 "properties": {"$set_once": {f"first_{device}": n}, "$set": {f"last_{device}": n}}}
                for n in range(rng.randint(2, 8))
            ]  # fmt: skip
            streams.append(stream)
        user_stream = []
        for device in devices:
            user_stream.append(
                {"distinct_id": user, "event": "$identify", "properties": {"$anon_distinct_id": device}}
            )
            user_stream += [
                {"distinct_id": user, "event": "clicked", "properties": {"$set": {f"last_{user}": n}}}
                for n in range(rng.randint(1, 4))
            ]
        if u % 5 == 0:
            alias = f"crm-{u}"
            streams.append(
                [{"distinct_id": alias, "event": "synced", "properties": {"$set": {f"crm_{u}": True}}}]
            )
            user_stream.append(
                {"distinct_id": user, "event": "$create_alias", "properties": {"alias": alias}}
            )
        streams.append(user_stream)
    # interleave the streams randomly, keeping each stream's order
    events: list[dict[str, Any]] = []
    cursors = [0] * len(streams)
    live = list(range(len(streams)))
    while live:
        s = rng.choice(live)
        events.append(streams[s][cursors[s]])
        cursors[s] += 1
        if cursors[s] == len(streams[s]):
            live.remove(s)
    for n, event in enumerate(events):
        event.update(uuid=str(uuid.uuid4()), project_id=project_id, token=token,
                     timestamp=f"2026-11-01T10:{n // 600 % 60:02d}:{n % 60:02d}.000000Z",
                     received_at="2026-11-01T11:00:00.000000Z")  # fmt: skip
    return events


@pytest.fixture(scope="module")
async def dsn() -> AsyncIterator[str]:
    dsn = await create_database()
    await migrate_postgres(dsn)
    yield dsn
    await drop_database(dsn)


async def count_outputs(settings: Settings, expected: int, timeout: float) -> int:
    reader = AIOKafkaConsumer(EVENTS, bootstrap_servers=settings.kafka_bootstrap_servers,
                              auto_offset_reset="earliest", group_id=None)  # fmt: skip
    await reader.start()
    seen: set[str] = set()
    try:
        async with asyncio.timeout(timeout):
            while len(seen) < expected:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    seen.update(orjson.loads(r.value)["uuid"] for r in records)
    finally:
        await reader.stop()
    return len(seen)


async def test_two_workers_over_four_partitions_agree_with_the_model(
    module_broker: Tansu, dsn: str, tmp_path: Path
) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": module_broker.bootstrap, "KAFKA_TOPIC_PARTITIONS": "4",
           "KAFKA_SESSION_TIMEOUT_SECONDS": "3", "POSTGRES_DSN": dsn, "PERSONS_BATCH_MAX_MESSAGES": "500",
           "PERSONS_BATCH_MAX_SECONDS": "0.05", "WRITER_BATCH_MAX_SECONDS": "0.2"}  # fmt: skip
    settings = Settings.from_env(env)
    await ensure_topics(settings)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    project = await ensure_project(pool, "concurrency", api_token=f"tok-{uuid.uuid4().hex}")
    await pool.close()
    events = generate(project.id, project.api_token)
    assert len(events) >= 10_000

    stopping = asyncio.Event()
    workers = [asyncio.create_task(persons.main(settings, stopping)) for _ in range(2)]
    ch = await connect(f"chdb://{tmp_path}/chdb")
    writing = asyncio.create_task(writer.main(settings, stopping, ch))
    producer = await start_producer(settings)
    try:
        records = [Record(f"{e['token']}:{e['distinct_id']}".encode(), orjson.dumps(e)) for e in events]
        for start in range(0, len(records), 1000):
            await producer.send_all(EVENTS_RAW, records[start : start + 1000])
        assert await count_outputs(settings, len(events), timeout=120) == len(events)
    finally:
        await producer.stop()

    model = Model()
    for event in events:
        model.apply(event)
    expected = model.groups()

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT d.distinct_id, p.id, p.properties::text AS properties FROM person_distinct_ids d
               JOIN persons p ON p.id = d.person_id WHERE d.project_id = $1""",
            project.id,
        )
        orphans = await conn.fetchval(
            "SELECT count(*) FROM persons p WHERE NOT EXISTS"
            " (SELECT 1 FROM person_distinct_ids d WHERE d.person_id = p.id)"
        )
    finally:
        await conn.close()
    members: dict[uuid.UUID, set[str]] = {}
    properties: dict[uuid.UUID, dict[str, Any]] = {}
    for r in rows:
        members.setdefault(r["id"], set()).add(r["distinct_id"])
        properties[r["id"]] = orjson.loads(r["properties"])
    actual = {frozenset(ids): properties[p] for p, ids in members.items()}
    assert len(rows) == len(model.person_of), "every distinct id has exactly one person"
    assert orphans == 0
    assert set(actual) == set(expected)
    assert actual == expected

    # ClickHouse, through the writer: every distinct id maps to the person Postgres says
    postgres_mapping = {r["distinct_id"]: str(r["id"]) for r in rows}

    async def clickhouse_mapping() -> dict[str, str]:
        found = await ch.query(
            "SELECT distinct_id, toString(argMax(person_id, version)) AS person_id FROM person_distinct_ids"
            " WHERE project_id = {p:UInt64} GROUP BY distinct_id",
            {"p": project.id},
        )
        return {r["distinct_id"]: r["person_id"] for r in found}

    async def agrees() -> bool:
        return await clickhouse_mapping() == postgres_mapping

    try:
        assert await wait_until(agrees, timeout=30, interval=0.5), (
            "ClickHouse person_distinct_ids lags or differs"
        )
    finally:
        stopping.set()
        await asyncio.gather(*workers, writing)
        await ch.close()

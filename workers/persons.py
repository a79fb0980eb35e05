"""persons: events_raw -> (distinct id -> person id in Postgres) -> events.

Minimal person processing: a person is created on first sight of a (project, distinct id); the primary
key of `person_distinct_ids` guarantees that two workers racing on one id end up with one person.
Identify, alias, merges and person properties come with the person-processing issue.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence

import asyncpg
import orjson
import structlog

from workers.consume import ConsumeLoop, KafkaDeadLetters, LoopConfig
from workers.kafka import (
    EVENTS,
    EVENTS_RAW,
    Message,
    Producer,
    Record,
    ensure_topics,
    start_consumer,
    start_producer,
)
from workers.metrics import PERSONS_CREATED, PERSONS_RESOLVE_SECONDS
from workers.migrate import migrate_postgres
from workers.results import DeadLetter, Ok, Result
from workers.settings import Settings

log = structlog.get_logger(__name__)

STAGE = "persons"
PersonKey = tuple[int, str]  # (project_id, distinct_id)


def parse_raw_event(value: bytes) -> dict[str, object] | DeadLetter:
    """The checks persons needs from an events_raw message; anything else is the writer's concern."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return DeadLetter("invalid_json", str(exc))
    if not isinstance(event, dict):
        return DeadLetter("invalid_event", "message is not a JSON object")
    if not isinstance(event.get("project_id"), int) or isinstance(event.get("project_id"), bool):
        return DeadLetter("invalid_event", "project_id missing or not an integer")
    distinct_id = event.get("distinct_id")
    if not isinstance(distinct_id, str) or not distinct_id:
        return DeadLetter("invalid_event", "distinct_id missing or not a string")
    return event


class PersonStore:
    """distinct id -> person id, in Postgres, with an LRU in front of it."""

    def __init__(self, pool: asyncpg.Pool, cache_size: int = 200_000) -> None:
        self._pool = pool
        self._cache: OrderedDict[PersonKey, uuid.UUID] = OrderedDict()
        self._cache_size = cache_size

    async def resolve(self, keys: Sequence[PersonKey]) -> dict[PersonKey, uuid.UUID]:
        found: dict[PersonKey, uuid.UUID] = {}
        missing: list[PersonKey] = []
        for key in dict.fromkeys(keys):
            person = self._cache.get(key)
            if person is None:
                missing.append(key)
            else:
                self._cache.move_to_end(key)
                found[key] = person
        if missing:
            started = time.perf_counter()
            found.update(await self._resolve_in_postgres(missing))
            PERSONS_RESOLVE_SECONDS.observe(time.perf_counter() - started)
        return found

    async def _resolve_in_postgres(self, keys: list[PersonKey]) -> dict[PersonKey, uuid.UUID]:
        projects = [k[0] for k in keys]
        distinct_ids = [k[1] for k in keys]
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT d.project_id, d.distinct_id, d.person_id
                   FROM person_distinct_ids d
                   JOIN unnest($1::bigint[], $2::text[]) AS k(project_id, distinct_id)
                     ON d.project_id = k.project_id AND d.distinct_id = k.distinct_id""",
                projects,
                distinct_ids,
            )
            result = {(r["project_id"], r["distinct_id"]): r["person_id"] for r in rows}
            new = sorted(k for k in keys if k not in result)  # one lock order across workers: no deadlocks
            if new:
                known = await conn.fetch(
                    "SELECT id FROM projects WHERE id = ANY($1::bigint[])", list({k[0] for k in new})
                )
                existing = {r["id"] for r in known}
                new = [k for k in new if k[0] in existing]  # the rest are dead-lettered by the caller
            if new:
                result.update(await self._create(conn, new))
        for key, person in result.items():
            self._remember(key, person)
        return result

    async def _create(self, conn: asyncpg.Connection, keys: list[PersonKey]) -> dict[PersonKey, uuid.UUID]:
        """New persons for unseen ids; where another worker got there first, keep its person."""
        candidates = [uuid.uuid4() for _ in keys]
        projects = [k[0] for k in keys]
        distinct_ids = [k[1] for k in keys]
        await conn.execute(
            "INSERT INTO persons (id, project_id) SELECT * FROM unnest($1::uuid[], $2::bigint[])",
            candidates,
            projects,
        )
        inserted = await conn.fetch(
            """INSERT INTO person_distinct_ids (project_id, distinct_id, person_id)
               SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[])
               ON CONFLICT (project_id, distinct_id) DO NOTHING
               RETURNING project_id, distinct_id, person_id""",
            projects,
            distinct_ids,
            candidates,
        )
        result = {(r["project_id"], r["distinct_id"]): r["person_id"] for r in inserted}
        PERSONS_CREATED.inc(len(result))
        lost = [(k, c) for k, c in zip(keys, candidates, strict=True) if k not in result]
        if lost:
            await conn.execute("DELETE FROM persons WHERE id = ANY($1::uuid[])", [c for _, c in lost])
            rows = await conn.fetch(
                """SELECT d.project_id, d.distinct_id, d.person_id FROM person_distinct_ids d
                   JOIN unnest($1::bigint[], $2::text[]) AS k(project_id, distinct_id)
                     ON d.project_id = k.project_id AND d.distinct_id = k.distinct_id""",
                [k[0] for k, _ in lost],
                [k[1] for k, _ in lost],
            )
            result.update({(r["project_id"], r["distinct_id"]): r["person_id"] for r in rows})
        return result

    def _remember(self, key: PersonKey, person: uuid.UUID) -> None:
        self._cache[key] = person
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def make_process(store: PersonStore):  # type: ignore[no-untyped-def]
    async def assign_persons(batch: list[Message]) -> list[Result[Record]]:
        parsed = [parse_raw_event(m.value) for m in batch]
        keys = [(e["project_id"], e["distinct_id"]) for e in parsed if isinstance(e, dict)]
        persons = await store.resolve(keys)  # type: ignore[arg-type]
        results: list[Result[Record]] = []
        for message, event in zip(batch, parsed, strict=True):
            if isinstance(event, DeadLetter):
                results.append(event)
                continue
            person = persons.get((event["project_id"], event["distinct_id"]))  # type: ignore[arg-type]
            if person is None:
                results.append(DeadLetter("unknown_project", f"project {event['project_id']} does not exist"))
                continue
            event["person_id"] = str(person)
            results.append(Ok(Record(message.key, orjson.dumps(event))))
        return results

    return assign_persons


class TopicSink:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def write(self, items: Sequence[Record]) -> None:
        await self._producer.send_all(self._topic, items)


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    await migrate_postgres(settings.postgres_dsn)
    await ensure_topics(settings)
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)
    producer = await start_producer(settings)
    config = LoopConfig(
        STAGE,
        settings.persons_batch_max_messages,
        settings.persons_batch_max_seconds,
        settings.sink_retry_attempts,
        settings.sink_retry_backoff_seconds,
    )
    loop = ConsumeLoop(
        config,
        make_process(PersonStore(pool)),
        TopicSink(producer, EVENTS),
        KafkaDeadLetters(producer, STAGE),
    )
    consumer = await start_consumer(settings, STAGE, EVENTS_RAW, loop.flush)
    log.info("persons_consuming", topic=EVENTS_RAW, output=EVENTS)
    try:
        await loop.run(consumer, stopping)
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()

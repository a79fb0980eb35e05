"""persons: events_raw -> enrichment -> identity and person properties in Postgres -> events, persons,
person_distinct_ids.

One consumer batch is one walk (`workers.identity`) and at most one Postgres transaction: the persons the
batch refers to are read in one statement (or come from the LRU cache), the events are applied in order
in memory, and the resulting writes run together. Concurrency with other workers is optimistic: the
transaction locks the stored persons it changes and checks their versions; on a conflict it rolls back,
forgets what it cached and walks the batch again from fresh rows. Kafka messages describing the changes
(persons, person_distinct_ids) are produced inside the transaction, before it commits: a worker killed
after the commit would walk the batch again to no change and never send them; killed before it, Postgres
rolls back and the same walk sends the same records again. The events go through the consume loop's sink.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import structlog

from workers import contract, lag, opsql
from workers.consume import ConsumeLoop, DeadLetterLimits, KafkaDeadLetters, LoopConfig
from workers.enrich import GeoIP, RulesCache, add_user_agent
from workers.freshness import instance_id, is_heartbeat, passed_on
from workers.identity import Key, Person, PersonId, Plan, Walk, first_version, junk_reason, link_of
from workers.kafka import (
    EVENTS,
    EVENTS_OVERFLOW,
    EVENTS_RAW,
    PERSON_DISTINCT_IDS,
    PERSONS,
    Message,
    Producer,
    Record,
    ensure_topics,
    start_prioritized_consumer,
    start_producer,
)
from workers.metrics import (
    BLOCKED_EVENTS,
    PERSONS_CONFLICTS,
    PERSONS_CREATED,
    PERSONS_MERGES,
    PERSONS_POSTGRES_STATEMENTS,
    PERSONS_REFUSED,
    PERSONS_RESOLVE_SECONDS,
)
from workers.migrate import migrate_postgres
from workers.results import DeadLetter, Drop, Ok, Result
from workers.sanitize import Limits
from workers.settings import Settings

log = structlog.get_logger(__name__)

STAGE = "persons"
MAX_WALKS = 8  # attempts of one batch against concurrent changes before it counts as failed
Output = tuple[str, Record]  # (topic, record)


class Conflict(Exception):
    """Another worker changed a person or a distinct id this batch relies on."""


def parse_raw_event(value: bytes, limits: Limits) -> dict[str, Any] | DeadLetter:
    """An events_raw message as persons needs it: the contract's checks, and a distinct id naming someone."""
    try:
        event = contract.raw_event(value, limits, STAGE)
    except contract.Invalid as exc:
        return DeadLetter(exc.reason, exc.detail)
    if (reason := junk_reason(event["distinct_id"])) is not None:
        return DeadLetter("junk_distinct_id", reason)
    return event


def keys_of(event: dict[str, Any]) -> list[Key]:
    """The distinct ids an event needs to know the persons of: its own, and the one it links to."""
    keys = [(event["project_id"], event["distinct_id"])]
    link = link_of(event)
    if link is not None and link.source is not None:
        keys.append((event["project_id"], link.source))
    return keys


async def init_connection(conn: asyncpg.Connection) -> None:
    """Pool init: jsonb as Python objects through orjson."""
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )


class PersonStore:
    """Persons and distinct ids in Postgres, with an LRU of what this worker last saw in front."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        max_properties_bytes: int,
        publish: Callable[[list[Output]], Awaitable[None]],
        cache_size: int = 200_000,
    ) -> None:
        self._pool = pool
        self._publish = publish  # produces the changes before the commit: see the module's docstring
        self._max_bytes = max_properties_bytes
        self._cache_size = cache_size
        self._ids: OrderedDict[Key, PersonId] = OrderedDict()
        self._persons: dict[PersonId, Person] = {}
        self._projects: set[int] = set()

    async def known_projects(self, project_ids: set[int]) -> set[int]:
        missing = project_ids - self._projects
        if missing:
            async with self._pool.acquire() as conn:
                PERSONS_POSTGRES_STATEMENTS.inc()
                rows = await conn.fetch("SELECT id FROM projects WHERE id = ANY($1::bigint[])", list(missing))
            self._projects.update(r["id"] for r in rows)
        return project_ids & self._projects

    async def walk(self, events: list[dict[str, Any]]) -> list[Any]:
        """Apply the events in order and make it so in Postgres (publishing the changes); their outcomes."""
        keys = list(dict.fromkeys(k for e in events for k in keys_of(e)))
        for attempt in range(1, MAX_WALKS + 1):
            ids, persons = await self._load(keys, fresh=attempt > 1)
            walk = Walk(ids, persons, self._max_bytes)
            outcomes = [walk.apply(e) for e in events]
            plan = walk.plan()
            if plan.empty:
                return outcomes
            try:
                moved = await self._write(plan)
            except Conflict as exc:
                PERSONS_CONFLICTS.inc()
                log.info("persons_conflict", attempt=attempt, error=str(exc))
                continue
            self._remember(walk, plan, moved)
            return outcomes
        raise Conflict(f"batch still conflicted after {MAX_WALKS} attempts")

    async def _load(self, keys: list[Key], fresh: bool) -> tuple[dict[Key, PersonId], dict[PersonId, Person]]:
        ids: dict[Key, PersonId] = {}
        persons: dict[PersonId, Person] = {}
        missing: list[Key] = []
        for key in keys:
            person_id = None if fresh else self._ids.get(key)
            if person_id is not None and person_id in self._persons:
                self._ids.move_to_end(key)
                ids[key] = person_id
                persons[person_id] = self._persons[person_id]
            else:
                missing.append(key)
        if missing:
            started = time.perf_counter()
            async with self._pool.acquire() as conn:
                PERSONS_POSTGRES_STATEMENTS.inc()
                rows = await conn.fetch(
                    """SELECT d.project_id, d.distinct_id, p.id, p.properties, p.is_identified, p.created_at,
                              p.version
                       FROM unnest($1::bigint[], $2::text[]) AS k(project_id, distinct_id)
                       JOIN person_distinct_ids d USING (project_id, distinct_id)
                       JOIN persons p ON p.id = d.person_id""",
                    [k[0] for k in missing],
                    [k[1] for k in missing],
                )
            PERSONS_RESOLVE_SECONDS.observe(time.perf_counter() - started)
            for r in rows:
                person = Person(str(r["id"]), r["project_id"], r["properties"], r["is_identified"], r["created_at"],
                                r["version"])  # fmt: skip
                ids[(r["project_id"], r["distinct_id"])] = person.id
                persons[person.id] = person
                self._persons[person.id] = person
                self._cache_id((r["project_id"], r["distinct_id"]), person.id)
        return ids, persons

    async def _write(self, plan: Plan) -> list[asyncpg.Record]:
        statements = 0
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if plan.check_versions:
                    statements += 1
                    rows = await conn.fetch(
                        "SELECT id, version FROM persons WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
                        sorted(plan.check_versions),
                    )
                    found = {str(r["id"]): r["version"] for r in rows}
                    if found != plan.check_versions:
                        raise Conflict("a person changed or was merged away by another worker")
                if plan.insert_persons:
                    statements += 1
                    await conn.execute(
                        """INSERT INTO persons (id, project_id, properties, is_identified, created_at, version)
                           SELECT id, project_id, properties::jsonb, is_identified, created_at, version
                           FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bool[], $5::timestamptz[],
                                       $6::bigint[])
                             AS t(id, project_id, properties, is_identified, created_at, version)""",
                        *_person_columns(plan.insert_persons),
                    )
                if plan.insert_ids:
                    statements += 1
                    keys = list(plan.insert_ids)
                    inserted = await conn.fetch(
                        """INSERT INTO person_distinct_ids (project_id, distinct_id, person_id, version)
                           SELECT project_id, distinct_id, person_id, version
                           FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::bigint[])
                             AS t(project_id, distinct_id, person_id, version)
                           ON CONFLICT (project_id, distinct_id) DO NOTHING
                           RETURNING distinct_id""",
                        [k[0] for k in keys],
                        [k[1] for k in keys],
                        [plan.insert_ids[k] for k in keys],
                        [first_version(*k, plan.insert_ids[k]) for k in keys],
                    )
                    if len(inserted) != len(keys):
                        raise Conflict("another worker gave a person to a distinct id first")
                moved: list[asyncpg.Record] = []
                if plan.move_ids:
                    statements += 2
                    moved = await conn.fetch(
                        """UPDATE person_distinct_ids d SET person_id = m.target, version = d.version + 1
                           FROM unnest($1::uuid[], $2::uuid[]) AS m(source, target)
                           WHERE d.person_id = m.source
                           RETURNING d.project_id, d.distinct_id, d.person_id, d.version""",
                        list(plan.move_ids),
                        list(plan.move_ids.values()),
                    )
                    await conn.execute("DELETE FROM persons WHERE id = ANY($1::uuid[])", list(plan.move_ids))
                if plan.update_persons:
                    statements += 1
                    await conn.execute(
                        """UPDATE persons p SET properties = u.properties::jsonb, is_identified = u.is_identified,
                                  created_at = u.created_at, version = u.version
                           FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bool[], $5::timestamptz[],
                                       $6::bigint[])
                             AS u(id, project_id, properties, is_identified, created_at, version)
                           WHERE p.id = u.id""",
                        *_person_columns(plan.update_persons),
                    )
                await self._publish(_changes(plan, moved))  # before the commit: see the module's docstring
        except (
            asyncpg.DeadlockDetectedError,
            asyncpg.SerializationError,
            asyncpg.ForeignKeyViolationError,
            asyncpg.UniqueViolationError,
        ) as exc:
            raise Conflict(f"{type(exc).__name__}: {exc}") from exc
        finally:
            PERSONS_POSTGRES_STATEMENTS.inc(statements)
        return moved

    def _remember(self, walk: Walk, plan: Plan, moved: list[asyncpg.Record]) -> None:
        for person_id in plan.move_ids:
            self._persons.pop(person_id, None)
        for person in plan.insert_persons + plan.update_persons:
            self._persons[person.id] = person
        for key, person_id in walk.ids.items():
            if person_id in walk.persons or person_id in self._persons:
                self._cache_id(key, person_id)
        for r in moved:
            self._cache_id((r["project_id"], r["distinct_id"]), str(r["person_id"]))

    async def dropped(self, events: list[dict[str, Any]], reason: str) -> None:
        """Record events dropped on purpose, for the reconciliation (workers.reconcile); idempotent."""
        async with self._pool.acquire() as conn:
            PERSONS_POSTGRES_STATEMENTS.inc()
            await conn.execute(
                opsql.postgres("drop_event.sql"),
                [e["project_id"] for e in events],
                [e["uuid"] for e in events],
                [_hour(e) for e in events],
                [reason] * len(events),
            )

    def forget(self) -> None:
        self._ids.clear()
        self._persons.clear()

    def _cache_id(self, key: Key, person_id: PersonId) -> None:
        self._ids[key] = person_id
        self._ids.move_to_end(key)
        while len(self._ids) > self._cache_size:
            _, evicted = self._ids.popitem(last=False)
            self._persons.pop(evicted, None)  # a person may hold other cached ids: they reload on next use


def _hour(event: dict[str, Any]) -> datetime:
    """The UTC hour of the event's timestamp, as capture counted it (workers.freshness.AcceptedCounts)."""
    moment = contract.instant(event, "timestamp")
    assert moment is not None
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _changes(plan: Plan, moved: list[asyncpg.Record]) -> list[Output]:
    """A plan as the persons and person_distinct_ids messages that describe it."""
    outputs = [_person_record(p, deleted=False) for p in plan.insert_persons + plan.update_persons]
    outputs += [_person_record(p, deleted=True) for p in plan.delete_persons]
    outputs += [_id_record(*k, p, first_version(*k, p)) for k, p in plan.insert_ids.items()]
    outputs += [
        _id_record(r["project_id"], r["distinct_id"], str(r["person_id"]), r["version"]) for r in moved
    ]
    PERSONS_CREATED.inc(len(plan.insert_persons))
    return outputs


def _person_columns(persons: list[Person]) -> list[list[Any]]:
    return [
        [p.id for p in persons],
        [p.project_id for p in persons],
        [orjson.dumps(p.properties).decode() for p in persons],
        [p.is_identified for p in persons],
        [p.created_at for p in persons],
        [p.version for p in persons],
    ]


def _person_record(person: Person, deleted: bool) -> Output:
    value = {
        "id": person.id,
        "project_id": person.project_id,
        "properties": person.properties,
        "is_identified": person.is_identified,
        "created_at": person.created_at.isoformat(),
        "version": person.version + 1 if deleted else person.version,
        "is_deleted": deleted,
    }
    return PERSONS, Record(person.id.encode(), orjson.dumps(value))


def _id_record(project_id: int, distinct_id: str, person_id: PersonId, version: int) -> Output:
    value = {
        "project_id": project_id,
        "distinct_id": distinct_id,
        "person_id": person_id,
        "version": version,
        "is_deleted": False,
    }
    return PERSON_DISTINCT_IDS, Record(f"{project_id}:{distinct_id}".encode(), orjson.dumps(value))


@dataclass
class Enrichment:
    rules: RulesCache
    geoip: GeoIP | None


def make_process(store: PersonStore, limits: Limits, enrichment: Enrichment | None = None):  # type: ignore[no-untyped-def]
    async def process(batch: list[Message]) -> list[Result[list[Output]]]:
        results: list[Result[list[Output]]] = []
        events: list[tuple[int, dict[str, Any]]] = []  # (index in batch, event)
        blocked: list[dict[str, Any]] = []
        # None: a heartbeat (workers.freshness)
        parsed = [None if is_heartbeat(m) else parse_raw_event(m.value, limits) for m in batch]
        projects = await store.known_projects({e["project_id"] for e in parsed if isinstance(e, dict)})
        rules = await enrichment.rules.current() if enrichment is not None else None
        for index, event in enumerate(parsed):
            if event is None:  # issue 10: on to the same partition of events, untouched
                results.append(Ok([(EVENTS, passed_on(batch[index]))]))
                continue
            if isinstance(event, DeadLetter):
                results.append(event)
                continue
            if event["project_id"] not in projects:
                results.append(DeadLetter("unknown_project", f"project {event['project_id']} does not exist"))
                continue
            if rules is not None and rules.is_blocked(event):
                BLOCKED_EVENTS.labels(str(event["project_id"]), event["event"]).inc()
                blocked.append(event)
                results.append(Drop("blocked_event"))
                continue
            if enrichment is not None:
                add_user_agent(event)
                if enrichment.geoip is not None:
                    enrichment.geoip.add_place(event)
            if rules is not None and (error := rules.schema_error(event)) is not None:
                results.append(DeadLetter("schema_invalid", error))
                continue
            results.append(Ok([]))
            events.append((index, event))
        if blocked:
            await store.dropped(blocked, "blocked_event")
        if not events:
            return results
        outcomes = await store.walk([e for _, e in events])
        for (index, event), outcome in zip(events, outcomes, strict=True):
            event["person_id"] = outcome.person_id
            event["person_properties"] = outcome.properties
            for reason, detail in outcome.refused:
                PERSONS_REFUSED.labels(reason).inc()
                log.info(
                    "person_update_refused", reason=reason, detail=detail, distinct_id=event["distinct_id"]
                )
            if outcome.merged:
                PERSONS_MERGES.labels(outcome.merged).inc()
            # an events_overflow message has no key: its event goes on keyed as any other
            key = batch[index].key or f"{event.get('token')}:{event['distinct_id']}".encode()
            results[index] = Ok([(EVENTS, Record(key, orjson.dumps(event)))])
        return results

    return process


class TopicsSink:
    """Produces each output to its topic and waits for every acknowledgement."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    async def write(self, items: Sequence[list[Output]]) -> None:
        by_topic: dict[str, list[Record]] = {}
        for outputs in items:
            for topic, record in outputs:
                by_topic.setdefault(topic, []).append(record)
        await asyncio.gather(*(self._producer.send_all(t, records) for t, records in by_topic.items()))


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    await migrate_postgres(settings.postgres_dsn)
    await ensure_topics(settings)
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4, init=init_connection)
    producer = await start_producer(settings)
    enrichment = Enrichment(
        RulesCache(pool, settings.persons_config_refresh_seconds), GeoIP.open(settings.geoip_database_path)
    )
    sink = TopicsSink(producer)
    store = PersonStore(
        pool,
        settings.persons_max_properties_bytes,
        publish=lambda outputs: sink.write([outputs]),
        cache_size=settings.persons_cache_size,
    )
    config = LoopConfig(
        STAGE,
        settings.persons_batch_max_messages,
        settings.persons_batch_max_seconds,
        settings.sink_retry_attempts,
        settings.sink_retry_backoff_seconds,
        limits=DeadLetterLimits.from_settings(settings),
    )
    process = make_process(store, Limits.from_settings(settings), enrichment)
    loop = ConsumeLoop(config, process, sink, KafkaDeadLetters(producer, STAGE))
    # hot distinct ids' events (events_overflow) only while events_raw leaves room in a batch
    consumer = await start_prioritized_consumer(settings, STAGE, [EVENTS_RAW], [EVENTS_OVERFLOW], loop.flush)
    log.info("persons_consuming", topic=EVENTS_RAW, low_priority=EVENTS_OVERFLOW,
             outputs=[EVENTS, PERSONS, PERSON_DISTINCT_IDS])  # fmt: skip
    tracking = asyncio.create_task(
        lag.track(pool, instance_id(STAGE), producer.produced, settings.heartbeat_seconds, stopping, STAGE,
                  consumer.committed)
    )  # fmt: skip
    try:
        await loop.run(consumer, stopping)
    finally:
        tracking.cancel()
        await consumer.stop()
        await producer.stop()
        await pool.close()
        if enrichment.geoip is not None:
            enrichment.geoip.close()

"""writer: events, persons, person_distinct_ids and the Flink job's sessions, event_counts_1m, late_events
-> the ClickHouse tables of the same names, in batches, committed after the inserts return.

Storage is idempotent: a redelivered event has the same sort key (uuid included) in a ReplacingMergeTree,
so at-least-once delivery never double-counts after FINAL / merges; persons and distinct ids keep the row
with the highest version.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import structlog

from workers import contract, lag, opsql, reconcile
from workers.clickhouse import ClickHouse
from workers.consume import ConsumeLoop, DeadLetterLimits, KafkaDeadLetters, LoopConfig
from workers.freshness import (
    ACCEPTED_COLUMNS,
    HEARTBEAT_COLUMNS,
    HEARTBEATS_TABLE,
    Freshness,
    accepted_row,
    heartbeat_row,
    instance_id,
    is_heartbeat,
)
from workers.kafka import (
    ACCEPTED_COUNTS,
    EVENT_COUNTS_1M,
    EVENTS,
    LATE_EVENTS,
    PERSON_DISTINCT_IDS,
    PERSONS,
    SESSIONS,
    Message,
    ensure_topics,
    start_consumer,
    start_producer,
)
from workers.metrics import WRITER_LATE_EVENTS
from workers.migrate import migrate_clickhouse
from workers.results import DeadLetter, Ok, Result
from workers.sanitize import Limits
from workers.settings import Settings

log = structlog.get_logger(__name__)

STAGE = "writer"
EVENT_COLUMNS = (
    "uuid", "project_id", "event", "distinct_id", "person_id", "person_properties", "timestamp", "properties",
    "set", "set_once", "ip", "lib", "protocol", "sent_at", "received_at",
)  # fmt: skip
PERSON_COLUMNS = ("id", "project_id", "properties", "is_identified", "created_at", "version", "is_deleted")
DISTINCT_ID_COLUMNS = ("project_id", "distinct_id", "person_id", "version", "is_deleted")
SESSION_COLUMNS = (
    "session_id", "kind", "project_id", "person_id", "distinct_id", "start", "end", "duration_seconds",
    "event_count", "pageview_count", "entry_url", "exit_url", "bounced", "browser", "os", "device_type", "country",
)  # fmt: skip
# event_count_row leaves local_day out: to_rows adds it once the batch's time zones are known
# persons[i] is the person of distinct_ids[i], as the event was counted (the rollups map merged ids)
EVENT_COUNT_COLUMNS = ("project_id", "event", "minute", "count", "distinct_ids", "persons", "local_day")
LATE_EVENT_COLUMNS = (
    "uuid", "project_id", "event", "distinct_id", "person_id", "timestamp", "kafka_partition", "kafka_offset",
)  # fmt: skip
TABLES = {
    EVENTS: EVENT_COLUMNS,
    PERSONS: PERSON_COLUMNS,
    PERSON_DISTINCT_IDS: DISTINCT_ID_COLUMNS,
    SESSIONS: SESSION_COLUMNS,
    EVENT_COUNTS_1M: EVENT_COUNT_COLUMNS,
    LATE_EVENTS: LATE_EVENT_COLUMNS,
    ACCEPTED_COUNTS: ACCEPTED_COLUMNS,  # issue 10: freshness and reconciliation
    HEARTBEATS_TABLE: HEARTBEAT_COLUMNS,  # from `events`: heartbeats are messages of that topic
}
TOPICS = [table for table in TABLES if table != HEARTBEATS_TABLE]
Row = tuple[Any, ...]


def _json(value: Any) -> str:
    return "" if value is None else orjson.dumps(value).decode()


def event_row(value: bytes, limits: Limits) -> Row:
    """One `events` message as a row in EVENT_COLUMNS order; `contract.Invalid` says what is wrong."""
    event = contract.event(value, limits, STAGE)
    return (
        event["uuid"],
        event["project_id"],
        event["event"],
        event["distinct_id"],
        event["person_id"],
        _json(event["person_properties"]),
        contract.instant(event, "timestamp"),
        _json(event["properties"]),
        _json(event.get("set")),
        _json(event.get("set_once")),
        event.get("ip") or "",
        event.get("lib") or "",
        event.get("protocol") or "",
        contract.instant(event, "sent_at", required=False),
        contract.instant(event, "received_at"),
    )


def person_row(value: bytes, limits: Limits) -> Row:
    """One `persons` message as a row in PERSON_COLUMNS order."""
    person = contract.person(value, limits, STAGE)
    return (
        person["id"],
        person["project_id"],
        _json(person["properties"]),
        int(bool(person.get("is_identified"))),
        contract.instant(person, "created_at"),
        person["version"],
        int(bool(person.get("is_deleted"))),
    )


def distinct_id_row(value: bytes, limits: Limits) -> Row:
    """One `person_distinct_ids` message as a row in DISTINCT_ID_COLUMNS order."""
    row = contract.distinct_id(value, limits, STAGE)
    return (
        row["project_id"],
        row["distinct_id"],
        row["person_id"],
        row["version"],
        int(bool(row.get("is_deleted"))),
    )


def session_row(value: bytes, limits: Limits) -> Row:
    """One `sessions` message as a row in SESSION_COLUMNS order (a null string stored as '')."""
    session = contract.session(value, limits, STAGE)
    return (
        session["session_id"],
        session["kind"],
        session["project_id"],
        session["person_id"],
        session.get("distinct_id") or "",
        contract.instant(session, "start"),
        contract.instant(session, "end"),
        float(session["duration_seconds"]),
        session["event_count"],
        session["pageview_count"],
        session.get("entry_url") or "",
        session.get("exit_url") or "",
        int(session["bounced"]),
        session.get("browser") or "",
        session.get("os") or "",
        session.get("device_type") or "",
        session.get("country") or "",
    )


def event_count_row(value: bytes, limits: Limits) -> Row:
    """One `event_counts_1m` message as a row in EVENT_COUNT_COLUMNS order, without local_day."""
    count = contract.event_count(value, limits, STAGE)
    return (
        count["project_id"],
        count["event"],
        contract.instant(count, "minute"),
        count["count"],
        [distinct_id for _, distinct_id in count["actors"]],
        [person for person, _ in count["actors"]],
    )


def late_event_row(value: bytes, limits: Limits) -> Row:
    """One `late_events` message as a row in LATE_EVENT_COLUMNS order."""
    late = contract.late_event(value, limits, STAGE)
    return (
        late["uuid"],
        late["project_id"],
        late["event"],
        late["distinct_id"],
        late["person_id"],
        contract.instant(late, "timestamp"),
        late["kafka_partition"],
        late["kafka_offset"],
    )


ROW_OF = {
    EVENTS: event_row,
    PERSONS: person_row,
    PERSON_DISTINCT_IDS: distinct_id_row,
    SESSIONS: session_row,
    EVENT_COUNTS_1M: event_count_row,
    LATE_EVENTS: late_event_row,
    ACCEPTED_COUNTS: lambda value, limits: accepted_row(value, limits, STAGE),
    HEARTBEATS_TABLE: lambda value, _: heartbeat_row(value),
}


class ProjectZones:
    """Each project's time zone, loaded whole and loaded again on a miss, at most once a second."""

    def __init__(self, load: Callable[[], Awaitable[Mapping[int, str]]]) -> None:
        self._load = load
        self._zones: dict[int, ZoneInfo] = {}
        self._loaded_at = float("-inf")

    async def of(self, project_ids: set[int]) -> Mapping[int, ZoneInfo]:
        if not project_ids <= self._zones.keys() and time.monotonic() - self._loaded_at >= 1:
            self._loaded_at = time.monotonic()
            self._zones = {project: ZoneInfo(name) for project, name in (await self._load()).items()}
        return self._zones


def make_to_rows(limits: Limits, zones: ProjectZones):  # type: ignore[no-untyped-def]
    """to_rows for the writer: `zones` gives event_counts_1m rows their project's local day."""

    async def to_rows(batch: list[Message]) -> list[Result[tuple[str, Row]]]:
        """Each message as (table, row); the table is named after the topic."""
        results: list[Result[tuple[str, Row]]] = []
        for message in batch:
            table = HEARTBEATS_TABLE if is_heartbeat(message) else message.topic
            try:
                results.append(Ok((table, ROW_OF[table](message.value, limits))))
            except contract.Invalid as exc:
                results.append(DeadLetter(exc.reason, f"{message.topic}: {exc.detail}"))
        counted = {r.value[1][0] for r in results if isinstance(r, Ok) and r.value[0] == EVENT_COUNTS_1M}
        zone_of = await zones.of(counted)
        return [_with_local_day(result, zone_of) for result in results]

    return to_rows


def _with_local_day(
    result: Result[tuple[str, Row]], zone_of: Mapping[int, ZoneInfo]
) -> Result[tuple[str, Row]]:
    if not isinstance(result, Ok) or result.value[0] != EVENT_COUNTS_1M:
        return result
    row = result.value[1]
    zone = zone_of.get(row[0])
    if zone is None:
        return DeadLetter("unknown_project", f"{EVENT_COUNTS_1M}: project_id {row[0]}: no such project")
    return Ok((EVENT_COUNTS_1M, (*row, row[2].astimezone(zone).date())))


async def load_time_zones(pool: asyncpg.Pool) -> dict[int, str]:
    return {r["id"]: r["timezone"] for r in await pool.fetch("SELECT id, timezone FROM projects")}


class TablesSink:
    """Inserts each table's rows of a batch, one insert per table; `freshness` learns of stored heartbeats."""

    def __init__(self, ch: ClickHouse, freshness: Freshness | None = None) -> None:
        self._ch = ch
        self._freshness = freshness

    async def write(self, items: Sequence[tuple[str, Row]]) -> None:
        by_table: dict[str, list[Row]] = {}
        for table, row in items:
            by_table.setdefault(table, []).append(row)
        for table, rows in by_table.items():
            await self._ch.insert(table, TABLES[table], rows)
        WRITER_LATE_EVENTS.inc(len(by_table.get(LATE_EVENTS, ())))
        if self._freshness is not None:
            self._freshness.stored(by_table.get(HEARTBEATS_TABLE, ()))


async def main(settings: Settings, stopping: asyncio.Event, ch: ClickHouse) -> None:
    await migrate_clickhouse(ch)
    await ensure_topics(settings)
    producer = await start_producer(settings)  # for dead letters
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    config = LoopConfig(
        STAGE,
        settings.writer_batch_max_rows,
        settings.writer_batch_max_seconds,
        settings.sink_retry_attempts,
        settings.sink_retry_backoff_seconds,
        overlap_writes=True,  # to_rows has no side effects; chDB inserts release the GIL
        limits=DeadLetterLimits.from_settings(settings),
    )
    to_rows = make_to_rows(Limits.from_settings(settings), ProjectZones(lambda: load_time_zones(pool)))
    freshness = Freshness()
    newest = await ch.query(opsql.clickhouse("newest_heartbeats.sql"))
    freshness.stored([(None, r["partition"], datetime.fromtimestamp(r["micros"] / 1e6, UTC)) for r in newest])
    loop = ConsumeLoop(config, to_rows, TablesSink(ch, freshness), KafkaDeadLetters(producer, STAGE))
    consumer = await start_consumer(settings, STAGE, TOPICS, loop.flush)
    log.info("writer_consuming", topics=TOPICS, tables=list(TABLES))
    background = [
        asyncio.create_task(
            lag.track(pool, instance_id(STAGE), producer.produced, settings.heartbeat_seconds, stopping, STAGE,
                      consumer.committed)
        ),
        asyncio.create_task(reconcile.every(settings, ch.query, pool, stopping)),
    ]  # fmt: skip
    try:
        await loop.run(consumer, stopping)
    finally:
        for task in background:
            task.cancel()
        await consumer.stop()
        await producer.stop()
        await pool.close()

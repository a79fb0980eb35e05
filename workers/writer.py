"""writer: events, persons, person_distinct_ids -> the ClickHouse tables of the same names, in batches,
committed after the inserts return.

Storage is idempotent: a redelivered event has the same sort key (uuid included) in a ReplacingMergeTree,
so at-least-once delivery never double-counts after FINAL / merges; persons and distinct ids keep the row
with the highest version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import structlog

from workers import contract
from workers.clickhouse import ClickHouse
from workers.consume import ConsumeLoop, DeadLetterLimits, KafkaDeadLetters, LoopConfig
from workers.kafka import (
    EVENTS,
    PERSON_DISTINCT_IDS,
    PERSONS,
    Message,
    ensure_topics,
    start_consumer,
    start_producer,
)
from workers.migrate import migrate_clickhouse
from workers.results import DeadLetter, Ok, Result
from workers.sanitize import Limits
from workers.settings import Settings

log = structlog.get_logger(__name__)

STAGE = "writer"
EVENT_COLUMNS = (
    "uuid", "project_id", "event", "distinct_id", "person_id", "person_properties", "timestamp", "properties",
    "set", "set_once", "ip", "lib", "sent_at", "received_at",
)  # fmt: skip
PERSON_COLUMNS = ("id", "project_id", "properties", "is_identified", "created_at", "version", "is_deleted")
DISTINCT_ID_COLUMNS = ("project_id", "distinct_id", "person_id", "version", "is_deleted")
TABLES = {EVENTS: EVENT_COLUMNS, PERSONS: PERSON_COLUMNS, PERSON_DISTINCT_IDS: DISTINCT_ID_COLUMNS}
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


ROW_OF = {EVENTS: event_row, PERSONS: person_row, PERSON_DISTINCT_IDS: distinct_id_row}


def make_to_rows(limits: Limits):  # type: ignore[no-untyped-def]
    async def to_rows(batch: list[Message]) -> list[Result[tuple[str, Row]]]:
        """Each message as (table, row); the table is named after the topic."""
        results: list[Result[tuple[str, Row]]] = []
        for message in batch:
            try:
                results.append(Ok((message.topic, ROW_OF[message.topic](message.value, limits))))
            except contract.Invalid as exc:
                results.append(DeadLetter(exc.reason, f"{message.topic}: {exc.detail}"))
        return results

    return to_rows


class TablesSink:
    """Inserts each table's rows of a batch, one insert per table."""

    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch

    async def write(self, items: Sequence[tuple[str, Row]]) -> None:
        by_table: dict[str, list[Row]] = {}
        for table, row in items:
            by_table.setdefault(table, []).append(row)
        for table, rows in by_table.items():
            await self._ch.insert(table, TABLES[table], rows)


async def main(settings: Settings, stopping: asyncio.Event, ch: ClickHouse) -> None:
    await migrate_clickhouse(ch)
    await ensure_topics(settings)
    producer = await start_producer(settings)  # for dead letters
    config = LoopConfig(
        STAGE,
        settings.writer_batch_max_rows,
        settings.writer_batch_max_seconds,
        settings.sink_retry_attempts,
        settings.sink_retry_backoff_seconds,
        overlap_writes=True,  # to_rows has no side effects; chDB inserts release the GIL
        limits=DeadLetterLimits.from_settings(settings),
    )
    to_rows = make_to_rows(Limits.from_settings(settings))
    loop = ConsumeLoop(config, to_rows, TablesSink(ch), KafkaDeadLetters(producer, STAGE))
    consumer = await start_consumer(settings, STAGE, list(TABLES), loop.flush)
    log.info("writer_consuming", topics=list(TABLES), tables=list(TABLES))
    try:
        await loop.run(consumer, stopping)
    finally:
        await consumer.stop()
        await producer.stop()

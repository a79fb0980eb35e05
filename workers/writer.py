"""writer: events, persons, person_distinct_ids -> the ClickHouse tables of the same names, in batches,
committed after the inserts return.

Storage is idempotent: a redelivered event has the same sort key (uuid included) in a ReplacingMergeTree,
so at-least-once delivery never double-counts after FINAL / merges; persons and distinct ids keep the row
with the highest version.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import structlog

from workers.clickhouse import ClickHouse
from workers.consume import ConsumeLoop, KafkaDeadLetters, LoopConfig
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


class InvalidEvent(ValueError):
    pass


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _uuid(event: dict[str, Any], field: str) -> str:
    value = event.get(field)
    if isinstance(value, str) and _CANONICAL_UUID.match(value):  # what our stages write: no parse needed
        return value
    try:
        return str(uuid.UUID(str(event[field])))
    except (KeyError, ValueError) as exc:
        raise InvalidEvent(f"{field}: missing or not a UUID") from exc


def _time(event: dict[str, Any], field: str, required: bool = True) -> datetime | None:
    value = event.get(field)
    if value is None and not required:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"{field}: missing or not an ISO-8601 time") from exc
    if parsed.tzinfo is None:
        raise InvalidEvent(f"{field}: has no time zone")
    return parsed


def _json(value: Any) -> str:
    return "" if value is None else orjson.dumps(value).decode()


def _object(value: bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"invalid JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise InvalidEvent("not a JSON object")
    project_id = message.get("project_id")
    if not isinstance(project_id, int) or isinstance(project_id, bool) or project_id < 0:
        raise InvalidEvent("project_id: missing or not a non-negative integer")
    return message


def _version(message: dict[str, Any]) -> int:
    version = message.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InvalidEvent("version: missing or not a non-negative integer")
    return version


def event_row(value: bytes) -> Row:
    """One `events` message as a row in EVENT_COLUMNS order; InvalidEvent says what is wrong."""
    event = _object(value)
    project_id = event["project_id"]
    name, distinct_id = event.get("event"), event.get("distinct_id")
    if not isinstance(name, str) or not name:
        raise InvalidEvent("event: missing or not a string")
    if not isinstance(distinct_id, str) or not distinct_id:
        raise InvalidEvent("distinct_id: missing or not a string")
    properties = event.get("properties") or {}
    if not isinstance(properties, dict):
        raise InvalidEvent("properties: not an object")
    return (
        _uuid(event, "uuid"),
        project_id,
        name,
        distinct_id,
        _uuid(event, "person_id"),
        _json(event.get("person_properties") or {}),
        _time(event, "timestamp"),
        _json(properties),
        _json(event.get("set")),
        _json(event.get("set_once")),
        str(event.get("ip") or ""),
        str(event.get("lib") or ""),
        _time(event, "sent_at", required=False),
        _time(event, "received_at"),
    )


def person_row(value: bytes) -> Row:
    """One `persons` message as a row in PERSON_COLUMNS order."""
    person = _object(value)
    properties = person.get("properties")
    if not isinstance(properties, dict):
        raise InvalidEvent("properties: missing or not an object")
    return (
        _uuid(person, "id"),
        person["project_id"],
        _json(properties),
        int(bool(person.get("is_identified"))),
        _time(person, "created_at"),
        _version(person),
        int(bool(person.get("is_deleted"))),
    )


def distinct_id_row(value: bytes) -> Row:
    """One `person_distinct_ids` message as a row in DISTINCT_ID_COLUMNS order."""
    row = _object(value)
    distinct_id = row.get("distinct_id")
    if not isinstance(distinct_id, str) or not distinct_id:
        raise InvalidEvent("distinct_id: missing or not a string")
    return (
        row["project_id"],
        distinct_id,
        _uuid(row, "person_id"),
        _version(row),
        int(bool(row.get("is_deleted"))),
    )


ROW_OF = {EVENTS: event_row, PERSONS: person_row, PERSON_DISTINCT_IDS: distinct_id_row}


async def to_rows(batch: list[Message]) -> list[Result[tuple[str, Row]]]:
    """Each message as (table, row); the table is named after the topic."""
    results: list[Result[tuple[str, Row]]] = []
    for message in batch:
        try:
            results.append(Ok((message.topic, ROW_OF[message.topic](message.value))))
        except InvalidEvent as exc:
            results.append(DeadLetter(f"invalid_{message.topic}_row", str(exc)))
    return results


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
    )
    loop = ConsumeLoop(config, to_rows, TablesSink(ch), KafkaDeadLetters(producer, STAGE))
    consumer = await start_consumer(settings, STAGE, list(TABLES), loop.flush)
    log.info("writer_consuming", topics=list(TABLES), tables=list(TABLES))
    try:
        await loop.run(consumer, stopping)
    finally:
        await consumer.stop()
        await producer.stop()

"""writer: events -> ClickHouse `events`, in batches, committed after the insert returns.

Storage is idempotent: a redelivered event has the same sort key (uuid included) in a ReplacingMergeTree,
so at-least-once delivery never double-counts after FINAL / merges.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import structlog

from workers.clickhouse import ClickHouse
from workers.consume import ConsumeLoop, KafkaDeadLetters, LoopConfig
from workers.kafka import EVENTS, Message, ensure_topics, start_consumer, start_producer
from workers.migrate import migrate_clickhouse
from workers.results import DeadLetter, Ok, Result
from workers.settings import Settings

log = structlog.get_logger(__name__)

STAGE = "writer"
EVENT_COLUMNS = (
    "uuid", "project_id", "event", "distinct_id", "person_id", "timestamp", "properties",
    "set", "set_once", "ip", "lib", "sent_at", "received_at",
)  # fmt: skip
Row = tuple[Any, ...]


class InvalidEvent(ValueError):
    pass


def _uuid(event: dict[str, Any], field: str) -> str:
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


def event_row(value: bytes) -> Row:
    """One `events` message as a row in EVENT_COLUMNS order; InvalidEvent says what is wrong."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"invalid JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise InvalidEvent("not a JSON object")
    project_id = event.get("project_id")
    if not isinstance(project_id, int) or isinstance(project_id, bool) or project_id < 0:
        raise InvalidEvent("project_id: missing or not a non-negative integer")
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
        _time(event, "timestamp"),
        _json(properties),
        _json(event.get("set")),
        _json(event.get("set_once")),
        str(event.get("ip") or ""),
        str(event.get("lib") or ""),
        _time(event, "sent_at", required=False),
        _time(event, "received_at"),
    )


async def to_rows(batch: list[Message]) -> list[Result[Row]]:
    results: list[Result[Row]] = []
    for message in batch:
        try:
            results.append(Ok(event_row(message.value)))
        except InvalidEvent as exc:
            results.append(DeadLetter("invalid_event", str(exc)))
    return results


class TableSink:
    def __init__(self, ch: ClickHouse, table: str, columns: Sequence[str]) -> None:
        self._ch = ch
        self._table = table
        self._columns = columns

    async def write(self, items: Sequence[Row]) -> None:
        await self._ch.insert(self._table, self._columns, items)


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
    )
    loop = ConsumeLoop(
        config, to_rows, TableSink(ch, "events", EVENT_COLUMNS), KafkaDeadLetters(producer, STAGE)
    )
    consumer = await start_consumer(settings, STAGE, [EVENTS], loop.flush)
    log.info("writer_consuming", topic=EVENTS, table="events")
    try:
        await loop.run(consumer, stopping)
    finally:
        await consumer.stop()
        await producer.stop()

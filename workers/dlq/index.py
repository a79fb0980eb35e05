"""The dlq worker: consumes `dead_letter` and indexes every message in Postgres (`dead_letters`).

A message is indexed under where it came from and the stage that parked it (its headers, written by
`workers.consume.dead_letter_record`), so a redelivered dead letter is indexed once. A message carrying
`replay_of` is a replayed one parked again: its row is updated with the new attempts and reason, parked
again, or `dead` once attempts reach DLQ_MAX_ATTEMPTS. This stage never parks anything itself: a message
without the source headers has nowhere to be replayed to and is indexed as `dead` with reason `unknown`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import asyncpg
import orjson
import structlog

from workers import lag
from workers.consume import ConsumeLoop, LoopConfig
from workers.dlq.sql import statement
from workers.freshness import instance_id
from workers.kafka import DEAD_LETTER, Message, ensure_topics, start_consumer
from workers.metrics import DLQ_INDEXED, DLQ_MESSAGES, DLQ_UNINDEXABLE
from workers.migrate import migrate_postgres
from workers.results import DeadLetter, Ok, Result
from workers.settings import Settings

log = structlog.get_logger(__name__)

STAGE = "dlq"
BATCH_MESSAGES = 500
BATCH_SECONDS = 0.5
GAUGE_SECONDS = 5.0
# stage and reason are index keys and metric labels; a topic name is at most 249 characters in Kafka
MAX_LABEL = 200
MAX_TOPIC = 249
MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1


class Row(NamedTuple):
    """One dead letter as index.sql takes it (the order of its parameters)."""

    replay_of: int | None
    source_topic: str
    source_partition: int
    source_offset: int
    stage: str
    reason: str
    error: str
    key: bytes | None
    value: bytes
    headers: str
    uuid: str | None
    seen: datetime
    attempts: int
    state: str


def _text(raw: bytes | str | None) -> str:
    """Header bytes as Postgres text: invalid UTF-8 and NUL (refused by text and jsonb) replaced."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw or ""
    return text.replace("\x00", "\ufffd")


def _int(raw: str | None, low: int, high: int) -> int | None:
    try:
        value = int(raw or "")
    except ValueError:
        return None
    return value if low <= value <= high else None


def _time(raw: str | None) -> datetime:
    try:
        seen = datetime.fromisoformat(raw) if raw else datetime.now(UTC)
    except ValueError:
        return datetime.now(UTC)
    return seen if seen.tzinfo else seen.replace(tzinfo=UTC)


def _uuid(value: bytes) -> str | None:
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    uuid = event.get("uuid") if isinstance(event, dict) else None
    return _text(uuid) if isinstance(uuid, str) else None


def index_row(message: Message, max_attempts: int) -> Row:
    headers = {_text(name): _text(value) for name, value in message.headers}
    attempts = _int(headers.get("attempts"), 1, MAX_INT) or 1
    # without its source a message has nowhere to be replayed to; it is indexed under its own place in
    # dead_letter, so its redelivery is harmless too
    unknown = Row(
        replay_of=_int(headers.get("replay_of"), 1, MAX_BIGINT),
        source_topic=DEAD_LETTER, source_partition=message.partition, source_offset=message.offset,
        stage="unknown", reason="unknown", error="no source headers: not parked by a pipeline stage",
        key=message.key, value=message.value, headers=orjson.dumps(headers).decode(),
        uuid=_uuid(message.value), seen=_time(headers.get("time")), attempts=attempts, state="dead",
    )  # fmt: skip
    topic = headers.get("source_topic", "")
    partition = _int(headers.get("source_partition"), 0, MAX_INT)
    offset = _int(headers.get("source_offset"), 0, MAX_BIGINT)
    if not 0 < len(topic) <= MAX_TOPIC or partition is None or offset is None:
        return unknown
    return unknown._replace(
        source_topic=topic, source_partition=partition, source_offset=offset,
        stage=(headers.get("stage") or "unknown")[:MAX_LABEL],
        reason=(headers.get("reason") or "unknown")[:MAX_LABEL],
        error=headers.get("error", ""), state="dead" if attempts >= max_attempts else "parked",
    )  # fmt: skip


class Index:
    """The consume loop's sink: one statement per batch."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def write(self, rows: Sequence[Row]) -> None:
        await self._pool.execute(
            statement("index.sql"), *(list(column) for column in zip(*rows, strict=True))
        )
        for row in rows:
            DLQ_INDEXED.labels(row.stage, row.reason).inc()


class Unindexable:
    """The dlq never parks into its own input. index_row makes every value one Postgres takes; should
    Postgres refuse a row anyway (isolated by the consume loop), the message stays where it is, in
    `dead_letter`, and is logged with its coordinates and counted, so it is neither lost in silence nor a
    crash loop."""

    async def write(self, items: Sequence[tuple[Message, DeadLetter]]) -> None:
        for message, dead in items:
            DLQ_UNINDEXABLE.inc()
            log.error("dlq_unindexable", partition=message.partition, offset=message.offset,
                      reason=dead.reason, error=dead.error)  # fmt: skip


async def refresh_gauge(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(statement("counts.sql"))
    DLQ_MESSAGES.clear()
    for row in rows:
        DLQ_MESSAGES.labels(row["stage"], row["reason"], row["state"]).set(row["messages"])


async def _refresh_gauge_forever(pool: asyncpg.Pool) -> None:
    while True:
        try:
            await refresh_gauge(pool)
        except (OSError, asyncpg.PostgresError) as exc:
            # the sink's failures stop the worker; a stale gauge alone does not
            log.warning("dlq_gauge_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(GAUGE_SECONDS)


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    await migrate_postgres(settings.postgres_dsn)
    await ensure_topics(settings)
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    max_attempts = settings.dlq_max_attempts

    async def process(batch: list[Message]) -> list[Result[Row]]:
        return [Ok(index_row(m, max_attempts)) for m in batch]

    config = LoopConfig(
        STAGE,
        BATCH_MESSAGES,
        BATCH_SECONDS,
        settings.sink_retry_attempts,
        settings.sink_retry_backoff_seconds,
    )
    loop = ConsumeLoop(config, process, Index(pool), Unindexable())
    consumer = await start_consumer(settings, STAGE, [DEAD_LETTER], loop.flush)
    gauge = asyncio.create_task(_refresh_gauge_forever(pool))
    # issue 10: its lag (it produces nothing while it runs: replays are the dlq commands')
    tracking = asyncio.create_task(
        lag.track(
            pool, instance_id(STAGE), {}, settings.heartbeat_seconds, stopping, STAGE, consumer.committed
        )
    )
    log.info("dlq_consuming", topic=DEAD_LETTER, max_attempts=max_attempts)
    try:
        await loop.run(consumer, stopping)
    finally:
        gauge.cancel()
        tracking.cancel()
        await consumer.stop()
        await pool.close()

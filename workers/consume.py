"""The consume loop every Kafka-consuming worker runs.

poll -> batch (by count and age) -> process (a Result per message) -> write the Ok values to the sink ->
park DeadLetters in `dead_letter` -> commit. Offsets are committed only after the outputs are durable.
An exception from process, sink, dead-letter produce or commit is an infrastructure failure: the step is
retried with backoff, then `BatchFailed` is raised without committing and the worker exits non-zero.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import structlog

from workers.kafka import DEAD_LETTER, Message, Producer, Record
from workers.metrics import (
    CONSUMER_BATCH_MESSAGES,
    CONSUMER_COMMITS,
    CONSUMER_FLUSH_SECONDS,
    CONSUMER_MESSAGES,
    CONSUMER_RETRIES,
    DEAD_LETTERS,
)
from workers.results import DeadLetter, Drop, Ok, Result

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

log = structlog.get_logger(__name__)


class Consumer(Protocol):
    async def getmany(self, timeout_seconds: float, max_records: int) -> list[Message]: ...
    async def commit(self, offsets: dict[tuple[str, int], int]) -> None: ...


class Sink(Protocol[T_contra]):
    async def write(self, items: Sequence[T_contra]) -> None: ...


class DeadLetterSink(Protocol):
    async def write(self, items: Sequence[tuple[Message, DeadLetter]]) -> None: ...


Process = Callable[[list[Message]], Awaitable[list[Result[T]]]]


class BatchFailed(Exception):
    """Infrastructure kept failing past the retry limit; nothing of the batch was committed."""


@dataclass(frozen=True)
class LoopConfig:
    stage: str
    max_messages: int
    max_seconds: float
    retry_attempts: int
    retry_backoff_seconds: float
    poll_seconds: float = 0.5  # how long one poll may wait; bounds how fast a stop is noticed
    # write and commit a batch while the next one is polled and processed: only for a `process` without
    # side effects (the writer), since a later batch's process would run before an earlier batch is durable
    overlap_writes: bool = False


def dead_letter_record(message: Message, dead: DeadLetter, stage: str, now: datetime) -> Record:
    """The original bytes, unchanged, with where they came from and why they were parked. A message the
    dlq worker replayed carries `replay_of` (its index id) and `attempts`; both are passed on."""
    incoming = dict(message.headers)
    try:
        attempts = max(1, int(incoming.get("attempts", b"1")))
    except ValueError:
        attempts = 1
    headers = [
        ("source_topic", message.topic.encode()),
        ("source_partition", str(message.partition).encode()),
        ("source_offset", str(message.offset).encode()),
        ("stage", stage.encode()),
        ("reason", dead.reason.encode()),
        ("error", dead.error.encode("utf-8", "replace")[:4096]),
        ("time", now.isoformat().encode()),
        ("attempts", str(attempts).encode()),
    ]
    if "replay_of" in incoming:
        headers.append(("replay_of", incoming["replay_of"]))
    return Record(message.key, message.value, tuple(headers))


class KafkaDeadLetters:
    def __init__(self, producer: Producer, stage: str) -> None:
        self._producer = producer
        self._stage = stage

    async def write(self, items: Sequence[tuple[Message, DeadLetter]]) -> None:
        now = datetime.now(UTC)
        await self._producer.send_all(
            DEAD_LETTER, [dead_letter_record(m, d, self._stage, now) for m, d in items]
        )


class ConsumeLoop(Generic[T]):
    def __init__(
        self,
        config: LoopConfig,
        process: Process[T],
        sink: Sink[T],
        dead_letters: DeadLetterSink,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._config = config
        self._process = process
        self._sink = sink
        self._dead_letters = dead_letters
        self._clock = clock
        self._sleep = sleep
        self._pending: list[Message] = []
        self._deadline = 0.0
        self._lock = asyncio.Lock()
        self._consumer: Consumer | None = None
        self._writing: asyncio.Task[None] | None = None

    async def run(self, consumer: Consumer, stopping: asyncio.Event) -> None:
        """Consume until `stopping` is set, then flush and commit what was taken."""
        self._consumer = consumer
        config = self._config
        while not stopping.is_set():
            wait = config.max_seconds if not self._pending else self._deadline - self._clock()
            messages = await consumer.getmany(
                timeout_seconds=max(0.0, min(wait, config.poll_seconds)),
                max_records=config.max_messages - len(self._pending),
            )
            async with self._lock:
                if messages and not self._pending:
                    self._deadline = self._clock() + config.max_seconds
                self._pending.extend(messages)
                full = len(self._pending) >= config.max_messages
                if self._pending and (full or self._clock() >= self._deadline):
                    await self._flush_locked(settle=not config.overlap_writes)
        await self.flush()

    async def flush(self) -> None:
        """Process, write and commit everything taken so far (also called on partition revocation)."""
        async with self._lock:
            await self._flush_locked(settle=True)

    async def _flush_locked(self, settle: bool) -> None:
        """Process the pending batch, then write and commit it. With `settle=False` the write and commit
        run on while the loop polls the next batch; batches still commit one after the other, in order."""
        if self._pending and self._consumer is not None:
            batch, stage = self._pending, self._config.stage
            self._pending = []
            started = time.perf_counter()
            results = await self._retry("process", lambda: self._process(batch))
            if len(results) != len(batch):
                raise BatchFailed(
                    f"{stage}: process returned {len(results)} results for {len(batch)} messages"
                )
            await self._settle()
            self._writing = asyncio.create_task(self._write_and_commit(batch, results, started))
        if settle:
            await self._settle()

    async def _settle(self) -> None:
        """Wait for the batch being written and committed; its failure is ours."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _write_and_commit(self, batch: list[Message], results: list[Result[T]], started: float) -> None:
        stage, consumer = self._config.stage, self._consumer
        assert consumer is not None
        outputs = [r.value for r in results if isinstance(r, Ok)]
        dead = [(m, r) for m, r in zip(batch, results, strict=True) if isinstance(r, DeadLetter)]
        if outputs:
            await self._retry("sink", lambda: self._sink.write(outputs))
        if dead:
            await self._retry("dead_letter", lambda: self._dead_letters.write(dead))
        offsets: dict[tuple[str, int], int] = {}
        for m in batch:
            key = (m.topic, m.partition)
            offsets[key] = max(offsets.get(key, 0), m.offset + 1)
        await self._retry("commit", lambda: consumer.commit(offsets))

        CONSUMER_COMMITS.labels(stage).inc()
        CONSUMER_BATCH_MESSAGES.labels(stage).observe(len(batch))
        CONSUMER_FLUSH_SECONDS.labels(stage).observe(time.perf_counter() - started)
        CONSUMER_MESSAGES.labels(stage, "ok").inc(len(outputs))
        dropped = sum(1 for r in results if isinstance(r, Drop))
        if dropped:
            CONSUMER_MESSAGES.labels(stage, "drop").inc(dropped)
        if dead:
            CONSUMER_MESSAGES.labels(stage, "dead_letter").inc(len(dead))
            for _, d in dead:
                DEAD_LETTERS.labels(stage, d.reason).inc()
            log.warning(
                "dead_lettered", stage=stage, count=len(dead), reasons=sorted({d.reason for _, d in dead})
            )

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        config = self._config
        for n in range(1, config.retry_attempts + 1):
            try:
                return await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if n == config.retry_attempts:
                    log.error("batch_failed", stage=config.stage, step=what, attempts=n, error=error)
                    raise BatchFailed(f"{config.stage} {what} failed {n} times: {error}") from exc
                delay = min(config.retry_backoff_seconds * 2 ** (n - 1), 30.0)
                CONSUMER_RETRIES.labels(config.stage).inc()
                log.warning("batch_retry", stage=config.stage, step=what, attempt=n, delay=delay, error=error)
                await self._sleep(delay)
        raise AssertionError("unreachable")

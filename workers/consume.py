"""The consume loop every Kafka-consuming worker runs.

poll -> batch (by count and age) -> process (a Result per message) -> write the Ok values to the sink ->
park DeadLetters in `dead_letter` -> commit. Offsets are committed only after the outputs are durable.

Failures are sorted by `workers.errors`. A data error from process or sink (a value a store refuses, a
message the code cannot handle) is isolated by splitting the batch in halves until the offending messages
are alone; exactly those are parked, the rest go on. Any other error is transient: the step is retried with
backoff and jitter, then `BatchFailed` is raised without committing and the worker exits non-zero.

The DLQ limits stop a worker that parks too much (after a bad deploy, say) instead of draining its topic
into `dead_letter`: more than `max_ratio` of the last `window` messages, or `max_consecutive` in a row.
Reasons that judge a client's input (`contract.CLIENT_REASONS`) do not count.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import structlog

from workers.contract import CLIENT_REASONS
from workers.errors import DataError, as_data_error
from workers.kafka import DEAD_LETTER, Message, Producer, Record
from workers.metrics import (
    CONSUMER_BATCH_MESSAGES,
    CONSUMER_COMMITS,
    CONSUMER_FLUSH_SECONDS,
    CONSUMER_ISOLATIONS,
    CONSUMER_MESSAGES,
    CONSUMER_RETRIES,
    DEAD_LETTERS,
)
from workers.results import DeadLetter, Drop, Ok, Result
from workers.settings import Settings

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


class DeadLetterLimitExceeded(BatchFailed):
    """Too many messages went to dead_letter; the batch that crossed the limit was not committed."""


@dataclass(frozen=True)
class DeadLetterLimits:
    max_ratio: float = 1.0
    window: int = 1000
    max_consecutive: int = 1_000_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> DeadLetterLimits:
        return cls(settings.dlq_max_ratio, settings.dlq_window_messages, settings.dlq_max_consecutive)


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
    limits: DeadLetterLimits = DeadLetterLimits()
    commit_timeout_seconds: float = 10.0  # aiokafka retries some commit errors forever; we give up and exit


class DeadLetterWindow:
    """The last `window` outcomes and the current run of parked messages, for the DLQ limits."""

    def __init__(self, limits: DeadLetterLimits) -> None:
        self._limits = limits
        self._window: deque[bool] = deque(maxlen=limits.window)
        self._parked = 0  # parked messages inside the window
        self._consecutive = 0

    def crossed_by(self, results: Sequence[Result[Any]]) -> str | None:
        """The limit a batch's outcomes would cross, without taking them."""
        trial = DeadLetterWindow(self._limits)
        trial._window, trial._parked, trial._consecutive = (
            self._window.copy(),
            self._parked,
            self._consecutive,
        )
        return trial.observe(results)

    def observe(self, results: Sequence[Result[Any]]) -> str | None:
        """Take a batch's outcomes; the limit they cross, described, or None."""
        limits, window = self._limits, self._window
        for result in results:
            parked = isinstance(result, DeadLetter) and result.reason not in CLIENT_REASONS
            if len(window) == window.maxlen:
                self._parked -= window[0]
            window.append(parked)
            self._parked += parked
            self._consecutive = self._consecutive + 1 if parked else 0
            if self._consecutive >= limits.max_consecutive:
                return (
                    f"DLQ_MAX_CONSECUTIVE={limits.max_consecutive} reached: {self._consecutive} messages in a"
                    f" row went to dead_letter (last reason: {result.reason})"  # type: ignore[union-attr]
                )
            if len(window) == window.maxlen and self._parked > limits.max_ratio * len(window):
                return (
                    f"DLQ_MAX_RATIO={limits.max_ratio} exceeded: {self._parked} of the last {len(window)}"
                    " messages went to dead_letter"
                )
        return None


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
        jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.0),
    ) -> None:
        self._config = config
        self._process = process
        self._sink = sink
        self._dead_letters = dead_letters
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._pending: list[Message] = []
        self._deadline = 0.0
        self._lock = asyncio.Lock()
        self._consumer: Consumer | None = None
        self._writing: asyncio.Task[None] | None = None
        self._parked = DeadLetterWindow(config.limits)

    async def run(self, consumer: Consumer, stopping: asyncio.Event) -> None:
        """Consume until `stopping` is set, then flush and commit what was taken."""
        self._consumer = consumer
        config = self._config
        while not stopping.is_set():
            if self._writing is not None and self._writing.done():
                async with self._lock:  # a batch written in the background failed: stop now, not at the
                    await self._settle()  # next batch, which may never come (the broker is down, say)
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
            batch = self._pending
            self._pending = []
            started = time.perf_counter()
            results = await self._process_isolating(batch)
            await self._settle()
            self._writing = asyncio.create_task(self._write_and_commit(batch, results, started))
        if settle:
            await self._settle()

    async def _settle(self) -> None:
        """Wait for the batch being written and committed; its failure is ours."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _split_on_data_errors(
        self, step: str, items: list[Any], run: Callable[[list[Any]], Awaitable[Any]]
    ) -> list[tuple[list[Any], Any]]:
        """[(items, run(items))]; on a data error, each half on its own (the first half first, so a
        person's events keep their order), down to single items, whose outcome is then the DataError."""
        try:
            return [(items, await self._retry(step, lambda: run(items)))]
        except DataError as exc:
            if len(items) == 1:
                return [(items, exc)]
            CONSUMER_ISOLATIONS.labels(self._config.stage, step).inc()
            middle = len(items) // 2
            first = await self._split_on_data_errors(step, items[:middle], run)
            return first + await self._split_on_data_errors(step, items[middle:], run)

    async def _process_isolating(self, batch: list[Message]) -> list[Result[T]]:
        results: list[Result[T]] = []
        for part, outcome in await self._split_on_data_errors("process", batch, self._process):
            if isinstance(outcome, DataError):
                results.append(DeadLetter(outcome.reason, outcome.detail))
            elif len(outcome) != len(part):
                raise BatchFailed(
                    f"{self._config.stage}: process returned {len(outcome)} results for {len(part)}"
                )
            else:
                results.extend(outcome)
        return results

    async def _write_and_commit(self, batch: list[Message], results: list[Result[T]], started: float) -> None:
        stage, consumer = self._config.stage, self._consumer
        assert consumer is not None
        # checked before the sink too, so that nothing of a batch past a limit is written
        self._check_limits(self._parked.crossed_by(results))
        outputs = [(i, r.value) for i, r in enumerate(results) if isinstance(r, Ok)]
        if outputs:

            async def write(part: list[tuple[int, T]]) -> None:
                await self._sink.write([value for _, value in part])

            for part, outcome in await self._split_on_data_errors("sink", outputs, write):
                if isinstance(outcome, DataError):
                    results[part[0][0]] = DeadLetter(outcome.reason, outcome.detail)
        self._check_limits(self._parked.observe(results))
        dead = [(m, r) for m, r in zip(batch, results, strict=True) if isinstance(r, DeadLetter)]
        if dead:
            await self._retry("dead_letter", lambda: self._dead_letters.write(dead), isolate=False)
        offsets: dict[tuple[str, int], int] = {}
        for m in batch:
            key = (m.topic, m.partition)
            offsets[key] = max(offsets.get(key, 0), m.offset + 1)
        await self._retry("commit", lambda: self._commit(consumer, offsets), isolate=False)

        CONSUMER_COMMITS.labels(stage).inc()
        CONSUMER_BATCH_MESSAGES.labels(stage).observe(len(batch))
        CONSUMER_FLUSH_SECONDS.labels(stage).observe(time.perf_counter() - started)
        CONSUMER_MESSAGES.labels(stage, "ok").inc(sum(1 for r in results if isinstance(r, Ok)))
        dropped = sum(1 for r in results if isinstance(r, Drop))
        if dropped:
            CONSUMER_MESSAGES.labels(stage, "drop").inc(dropped)
        if dead:
            CONSUMER_MESSAGES.labels(stage, "dead_letter").inc(len(dead))
            for _, d in dead:
                DEAD_LETTERS.labels(stage, d.reason).inc()
            log.warning(
                "dead_lettered", stage=stage, count=len(dead), reasons=sorted({d.reason for _, d in dead}),
                first_error=dead[0][1].error[:500],
            )  # fmt: skip

    def _check_limits(self, limit: str | None) -> None:
        if limit is not None:
            log.error("dead_letter_limit", stage=self._config.stage, limit=limit)
            raise DeadLetterLimitExceeded(f"{self._config.stage}: {limit}; stopping without committing")

    async def _commit(self, consumer: Consumer, offsets: dict[tuple[str, int], int]) -> None:
        async with asyncio.timeout(self._config.commit_timeout_seconds):
            await consumer.commit(offsets)

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[Any]], isolate: bool = True) -> Any:
        """Run `attempt`, retrying transient failures with backoff and jitter. With `isolate`, a data error
        is raised at once as a `DataError`, for the caller to split the batch; without it, every error is
        retried (a dead letter or a commit that fails is never the message's fault)."""
        config = self._config
        for n in range(1, config.retry_attempts + 1):
            try:
                return await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                data = as_data_error(exc) if isolate else None
                if data is exc:
                    raise
                if data is not None:
                    raise data from exc
                error = f"{type(exc).__name__}: {exc}"
                if n == config.retry_attempts:
                    log.error("batch_failed", stage=config.stage, step=what, attempts=n, error=error)
                    raise BatchFailed(f"{config.stage} {what} failed {n} times: {error}") from exc
                delay = min(config.retry_backoff_seconds * 2 ** (n - 1), 30.0) * self._jitter()
                CONSUMER_RETRIES.labels(config.stage).inc()
                log.warning("batch_retry", stage=config.stage, step=what, attempt=n, delay=delay, error=error)
                await self._sleep(delay)
        raise AssertionError("unreachable")

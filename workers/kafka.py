"""The only module that talks to aiokafka: topics, the producer, the consumer.

Stages see `Producer.send_all` (every record acknowledged, or `ProduceFailed`) and the consume loop sees
`KafkaConsumer`, a thin adapter with the three calls it needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from workers.metrics import KAFKA_PRODUCE_ERRORS, KAFKA_PRODUCE_SECONDS, KAFKA_PRODUCED
from workers.settings import Settings

log = structlog.get_logger(__name__)

EVENTS_RAW = "events_raw"
EVENTS = "events"
PERSONS = "persons"
PERSON_DISTINCT_IDS = "person_distinct_ids"
DEAD_LETTER = "dead_letter"
SESSIONS = "sessions"  # the Flink job's outputs (flink/job.py)
EVENT_COUNTS_1M = "event_counts_1m"
LATE_EVENTS = "late_events"
ACCEPTED_COUNTS = "accepted_counts"  # issue 10: capture's running totals per project and hour
EVENTS_OVERFLOW = "events_overflow"  # issue 10: limits. Hot distinct ids' events, no key (capture -> persons)
TOPICS = (
    EVENTS_RAW,
    EVENTS,
    PERSONS,
    PERSON_DISTINCT_IDS,
    DEAD_LETTER,
    SESSIONS,
    EVENT_COUNTS_1M,
    LATE_EVENTS,
    ACCEPTED_COUNTS,
    EVENTS_OVERFLOW,
)

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Record:
    """One message to produce."""

    key: bytes | None
    value: bytes
    headers: Headers = ()
    partition: int | None = None  # explicit (modulo the topic's partitions); else by key, as aiokafka hashes


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed message, with where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()


class ProduceFailed(Exception):
    """Kafka did not acknowledge every record (broker down, timeout, rejected)."""

    refusal = "kafka_refused"

    def __init__(self, message: str, refuses_data: bool = False) -> None:
        super().__init__(message)
        self.refuses_data = refuses_data  # a record Kafka will never take (too large): workers.errors


class TopicsMissing(Exception):
    """A topic this worker consumes is gone (the broker came back empty, or an operator deleted it)."""


class FreshTopics:
    """The broker's topic names, fetched anew for each caller but shared: a caller gets the answer of a
    fetch that began after it asked, so an answer never predates the caller (0.28 ms a fetch on Tansu)."""

    def __init__(self, fetch: Callable[[], Awaitable[set[str]]]) -> None:
        self._fetch = fetch
        self._next: asyncio.Future[set[str]] | None = None
        self._running: asyncio.Task[None] | None = None

    async def get(self) -> set[str]:
        future = self._next
        if future is None:
            future = self._next = asyncio.get_running_loop().create_future()
            if self._running is None:
                self._start()  # takes self._next for its fetch: await the future we hold
        return await asyncio.shield(future)

    def _start(self) -> None:
        future, self._next = self._next, None
        assert future is not None

        async def run() -> None:
            try:
                future.set_result(await self._fetch())
            except Exception as exc:
                future.set_exception(exc)
            finally:
                self._running = None
                if self._next is not None:
                    self._start()

        self._running = asyncio.create_task(run())


class Producer:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        timeout_seconds: float,
        confirm_topics: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._producer = producer
        self._timeout = timeout_seconds
        self._confirm_topics = confirm_topics
        self._partitions: dict[tuple[bytes, int], int] = {}  # aiokafka's murmur2 is pure Python: remember
        # (topic, partition) -> the offset after the highest this producer had acknowledged (workers.lag)
        self.produced: dict[tuple[str, int], int] = {}

    def _partition(self, record: Record, partitions: list[int]) -> int:
        if record.partition is not None:
            return partitions[record.partition % len(partitions)]
        key = record.key
        if key is None:
            return int(DefaultPartitioner()(None, partitions, partitions))
        cache_key = (key, len(partitions))
        partition = self._partitions.get(cache_key)
        if partition is None:
            if len(self._partitions) >= 200_000:
                self._partitions.clear()
            partition = self._partitions[cache_key] = DefaultPartitioner()(key, partitions, partitions)
        return partition

    async def send_all(self, topic: str, records: Sequence[Record]) -> None:
        """Produce every record and wait for all acknowledgements; raise ProduceFailed otherwise.

        Records of concurrent calls share the producer's batches (measured: 1.6x capture's rate over a
        batch per call and partition). The partition is aiokafka's own key hashing, remembered per key.
        """
        if not records:
            return
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                if self._confirm_topics is not None:
                    await self._confirm_topics(topic)
                partitions = sorted(await self._producer.partitions_for(topic))
                send = self._producer.send
                futures = [
                    await send(topic, r.value, key=r.key, partition=self._partition(r, partitions),
                               headers=list(r.headers) or None)
                    for r in records
                ]  # fmt: skip
                outcomes = await asyncio.gather(*futures, return_exceptions=True)  # every error retrieved
            failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
            if failed is not None:
                raise failed
        except (KafkaError, TimeoutError, OSError) as exc:
            KAFKA_PRODUCE_ERRORS.labels(topic).inc()
            too_large = isinstance(exc, MessageSizeTooLargeError | RecordTooLargeError)
            raise ProduceFailed(f"{type(exc).__name__}: {exc}", refuses_data=too_large) from exc
        KAFKA_PRODUCE_SECONDS.labels(topic).observe(time.perf_counter() - started)
        KAFKA_PRODUCED.labels(topic).inc(len(records))
        for meta in outcomes:  # Tansu's end offsets are wrong, the offsets it acknowledges are right
            key = (topic, meta.partition)  # type: ignore[union-attr]
            self.produced[key] = max(self.produced.get(key, 0), meta.offset + 1)  # type: ignore[union-attr]

    async def partitions(self, topic: str) -> list[int]:
        try:
            async with asyncio.timeout(self._timeout):
                return sorted(await self._producer.partitions_for(topic))
        except (KafkaError, TimeoutError, OSError) as exc:
            raise ProduceFailed(f"{type(exc).__name__}: {exc}") from exc

    def forget(self, topic: str) -> None:
        """The topic was (re)created: offsets acknowledged before belong to a log that is gone."""
        for key in [k for k in self.produced if k[0] == topic]:
            del self.produced[key]

    async def stop(self) -> None:
        await self._producer.stop()


async def start_producer(settings: Settings) -> Producer:
    """A producer whose `send_all` waits for every acknowledgement. With KAFKA_CONFIRM_TOPICS each call
    first checks that its topic exists and creates the missing topics: Tansu acknowledges records sent to a
    topic it lost in a restart (from a producer's cached metadata), and creating the topic later drops them.
    Every producer checks, since any of them may be the first to send after such a restart."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        # Tansu keeps each batch as it arrives: gzip'd JSON takes ~6x less of its memory (README: Broker memory)
        compression_type=None if settings.kafka_compression == "none" else settings.kafka_compression,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=settings.capture_max_event_bytes + 64 * 1024,
        request_timeout_ms=int(settings.kafka_produce_timeout_seconds * 1000),
    )
    await producer.start()
    if not settings.kafka_confirm_topics:
        return Producer(producer, settings.kafka_produce_timeout_seconds)
    confirmed: Producer | None = None

    async def fetch() -> set[str]:
        return set((await producer.client.fetch_all_metadata()).topics())

    fresh = FreshTopics(fetch)

    async def confirm(topic: str) -> None:
        if topic not in await fresh.get():
            log.warning("topic_missing", topic=topic, action="create")
            await ensure_topics(settings, list(dict.fromkeys([*TOPICS, topic])))
            if confirmed is not None:
                confirmed.forget(topic)

    confirmed = Producer(producer, settings.kafka_produce_timeout_seconds, confirm)
    return confirmed


async def ensure_topics(settings: Settings, topics: Sequence[str] = TOPICS) -> None:
    """Create the pipeline's topics if missing, with the configured partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(t, settings.kafka_topic_partitions, 1) for t in missing])
            except TopicAlreadyExistsError:
                pass
            log.info("topics_created", topics=missing, partitions=settings.kafka_topic_partitions)
    finally:
        await admin.close()


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, on_revoked: Callable[[], Awaitable[None]]) -> None:
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: object) -> None:
        await self._on_revoked()

    async def on_partitions_assigned(self, assigned: object) -> None:
        log.info("partitions_assigned", partitions=sorted(str(tp) for tp in assigned))  # type: ignore[attr-defined]


TOPIC_CHECK_TIMEOUT_SECONDS = 5.0


class KafkaConsumer:
    """What the consume loop needs from a consumer; the tests give it a fake with the same calls.

    Every `topic_check_seconds` it asks the broker whether its topics still exist and raises
    `TopicsMissing` if not: the worker exits, and its restart recreates them (`ensure_topics`). Without
    this, a consumer of a broker that came back empty waits forever on partitions that are gone.
    """

    def __init__(
        self, consumer: AIOKafkaConsumer, stage: str, topics: Sequence[str], topic_check_seconds: float
    ) -> None:
        self._consumer = consumer
        self._stage = stage
        self._topics = set(topics)
        self._check_every = topic_check_seconds
        self._checked = time.monotonic()

    async def _check_topics(self) -> None:
        self._checked = time.monotonic()
        try:
            # bounded: a broker that accepted the connection while stopping or starting may never answer,
            # and the client's own request timeout (40 s) would hold the loop past a drain
            async with asyncio.timeout(TOPIC_CHECK_TIMEOUT_SECONDS):
                existing = await self._consumer.topics()
        except (KafkaError, TimeoutError):
            return  # the broker is down or not answering: nothing to learn; the next check asks again
        missing = self._topics - existing
        if missing:
            raise TopicsMissing(
                f"{self._stage}: topics {sorted(missing)} are gone from the broker (it came back empty, or"
                " they were deleted); exiting so that a restart recreates them"
            )

    async def getmany(self, timeout_seconds: float, max_records: int) -> list[Message]:
        if time.monotonic() - self._checked >= self._check_every:
            await self._check_topics()
        batches = await self._consumer.getmany(
            timeout_ms=int(timeout_seconds * 1000), max_records=max_records
        )
        # a tombstone (null value) is read as empty bytes: `Message.value` is bytes for every stage, and
        # a dead letter's value is bytes Postgres can index (dead_letters.value is NOT NULL)
        messages = [
            Message(m.topic, m.partition, m.offset, m.key, m.value or b"", tuple(m.headers or ()))
            for records in batches.values()
            for m in records
        ]
        return messages

    async def committed(self) -> dict[tuple[str, int], int]:
        """The group's committed offset of each partition assigned to this consumer (0 if none yet)."""
        return {
            (tp.topic, tp.partition): await self._consumer.committed(tp) or 0
            for tp in sorted(self._consumer.assignment())
        }

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})

    async def stop(self) -> None:
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            # aiokafka 0.14 re-raises the cancellation of its own pending fetch when the broker is gone; let
            # it through only if this task was cancelled, or it replaces the error that stopped the worker
            # (which then exits 0, without worker_failed)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            log.warning("consumer_stop_cancelled", stage=self._stage)


async def start_consumer(
    settings: Settings, stage: str, topics: Sequence[str], on_revoked: Callable[[], Awaitable[None]]
) -> KafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.kafka_consumer_group_prefix}-{stage}",
        enable_auto_commit=False,
        session_timeout_ms=int(settings.kafka_session_timeout_seconds * 1000),
        heartbeat_interval_ms=max(100, int(settings.kafka_session_timeout_seconds * 1000 / 4)),
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    consumer.subscribe(list(topics), listener=_Rebalance(on_revoked))
    await consumer.start()
    return KafkaConsumer(consumer, stage, topics, settings.kafka_topic_check_seconds)


async def group_committed(
    settings: Settings, group: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    """A consumer group's committed offsets on every partition of these topics (0 where it has none), read
    without joining the group (Tansu 0.6 does not answer the admin client's OffsetFetch)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    try:
        await consumer.start()
        existing = await consumer.topics()
        partitions = [
            TopicPartition(t, p)
            for t in topics
            if t in existing
            for p in consumer.partitions_for_topic(t) or ()
        ]
        return {(tp.topic, tp.partition): await consumer.committed(tp) or 0 for tp in sorted(partitions)}
    finally:
        await consumer.stop()


class PrioritizedConsumer(KafkaConsumer):
    """issue 10: limits. A consumer that reads its `low_priority` topics only while the others leave room:
    after a fetch that filled the batch from the other topics, their partitions are paused; after one that
    did not, resumed. Paused partitions keep their position, so nothing is skipped."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        stage: str,
        topics: Sequence[str],
        topic_check_seconds: float,
        low_priority: Sequence[str],
    ) -> None:
        super().__init__(consumer, stage, topics, topic_check_seconds)
        self._low_priority = set(low_priority)

    async def getmany(self, timeout_seconds: float, max_records: int) -> list[Message]:
        messages = await super().getmany(timeout_seconds, max_records)
        busy = sum(1 for m in messages if m.topic not in self._low_priority) >= max_records
        low = [tp for tp in self._consumer.assignment() if tp.topic in self._low_priority]
        paused = self._consumer.paused()
        if busy:
            self._consumer.pause(*[tp for tp in low if tp not in paused])
        else:
            self._consumer.resume(*[tp for tp in low if tp in paused])
        return messages


async def start_prioritized_consumer(
    settings: Settings,
    stage: str,
    topics: Sequence[str],
    low_priority: Sequence[str],
    on_revoked: Callable[[], Awaitable[None]],
) -> KafkaConsumer:
    """issue 10: limits. `start_consumer` for `topics` and `low_priority` (see PrioritizedConsumer)."""
    consumer = await start_consumer(settings, stage, [*topics, *low_priority], on_revoked)
    return PrioritizedConsumer(
        consumer._consumer, stage, [*topics, *low_priority], settings.kafka_topic_check_seconds, low_priority
    )

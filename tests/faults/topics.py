"""What the fault tests read from Kafka and the workers beside the stored rows: a topic's messages, a
consumer group's committed offsets, records written straight into a topic, a worker's /metrics counters.

Tansu does not answer the admin client's OffsetFetch, so committed offsets are read by a consumer of the
group that never subscribes (it does not join the group, so it moves no partition).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

PARTITIONS = 4  # KAFKA_TOPIC_PARTITIONS of the Stack


def group(stage: str) -> str:
    """The consumer group of a stage (KAFKA_CONSUMER_GROUP_PREFIX is left at its default)."""
    return f"user-analytics-{stage}"


async def committed(bootstrap: str, stage: str, topic: str) -> dict[int, int]:
    """The stage's committed offset of each partition of the topic (0: nothing committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group(stage), enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, timeout: float = 30) -> list[bytes]:
    """Every value the topic holds now, partition by partition. Read up to each partition's high-water mark
    as a fetch reports it: Tansu's ListOffsets (end_offsets) answers the last batch's base offset + 1."""
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + timeout
        while True:
            batches = await consumer.getmany(*partitions, timeout_ms=200)
            values += [record.value for records in batches.values() for record in records]
            marks = [consumer.highwater(tp) for tp in partitions]
            positions = [await consumer.position(tp) for tp in partitions]
            if not batches and None not in marks and positions == marks:
                return values
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: at {positions} of {marks} after {timeout}s")
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, values: Sequence[bytes], partition: int = 0) -> None:
    """Write the values, in order, into one partition of the topic, as no worker would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, partition=partition) for value in values]
        for future in futures:
            await future
    finally:
        await producer.stop()


def raw_event(project_id: int, distinct_id: str, event: str = "$pageview", **properties: Any) -> bytes:
    """An `events_raw` message as capture writes it (workers.contract)."""
    now = datetime.now(UTC).isoformat()
    return orjson.dumps({
        "uuid": str(uuid.uuid4()), "project_id": project_id, "event": event, "distinct_id": distinct_id,
        "timestamp": now, "received_at": now, "properties": properties,
    })  # fmt: skip


async def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A /metrics page as {(sample name, sorted labels): value}."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def consumed(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], stage: str) -> dict[str, int]:
    """ua_consumer_messages_total of a stage by outcome (ok, drop, dead_letter)."""
    return {
        dict(labels)["outcome"]: int(value)
        for (name, labels), value in samples.items()
        if name == "ua_consumer_messages_total" and dict(labels).get("stage") == stage
    }

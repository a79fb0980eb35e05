"""The consume loop with the real Tansu broker: commits, redelivery after a failure, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from workers.consume import BatchFailed, ConsumeLoop, KafkaDeadLetters, LoopConfig
from workers.kafka import DEAD_LETTER, Message, Record, ensure_topics, start_consumer, start_producer
from workers.results import DeadLetter, Ok, Result
from workers.settings import Settings

pytestmark = pytest.mark.kafka


class Collect:
    def __init__(self, fail: bool = False) -> None:
        self.items: list[bytes] = []
        self.fail = fail

    async def write(self, items: Sequence[bytes]) -> None:
        if self.fail:
            raise ConnectionError("ClickHouse is down")
        self.items.extend(items)


async def judge(batch: list[Message]) -> list[Result[bytes]]:
    return [
        DeadLetter("bad", "value starts with bad") if m.value.startswith(b"bad") else Ok(m.value)
        for m in batch
    ]


async def run_until(loop: ConsumeLoop[bytes], consumer, done, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    stopping = asyncio.Event()
    task = asyncio.create_task(loop.run(consumer, stopping))
    async with asyncio.timeout(timeout):
        while not done() and not task.done():
            await asyncio.sleep(0.05)
    stopping.set()
    await task


async def test_failed_batch_is_not_committed_and_is_redelivered(kafka_settings: Settings) -> None:
    topic, stage = f"t-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_settings, [topic])
    producer = await start_producer(kafka_settings)
    await producer.send_all(topic, [Record(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)])
    config = LoopConfig(stage, 1000, 0.2, 2, 0.01)

    broken = ConsumeLoop(config, judge, Collect(fail=True), KafkaDeadLetters(producer, stage))
    consumer = await start_consumer(kafka_settings, stage, [topic], broken.flush)
    with pytest.raises(BatchFailed):
        await run_until(broken, consumer, lambda: False)
    await consumer.stop()

    sink = Collect()
    working = ConsumeLoop(config, judge, sink, KafkaDeadLetters(producer, stage))
    consumer = await start_consumer(kafka_settings, stage, [topic], working.flush)
    await run_until(working, consumer, lambda: len(sink.items) >= 50)
    await consumer.stop()
    assert sorted(sink.items) == sorted(f"v{i}".encode() for i in range(50))

    # committed: a third consumer in the group gets nothing more
    sink2 = Collect()
    again = ConsumeLoop(config, judge, sink2, KafkaDeadLetters(producer, stage))
    consumer = await start_consumer(kafka_settings, stage, [topic], again.flush)
    stopping = asyncio.Event()
    task = asyncio.create_task(again.run(consumer, stopping))
    await asyncio.sleep(3)
    stopping.set()
    await task
    await consumer.stop()
    await producer.stop()
    assert sink2.items == []


async def test_bad_message_lands_in_dead_letter_with_headers(kafka_settings: Settings) -> None:
    topic, stage = f"t-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_settings, [topic])
    producer = await start_producer(kafka_settings)
    marker = uuid.uuid4().hex.encode()
    key = b"key-" + marker
    # one key, one partition of a new topic: the good message at offset 0, the bad one at offset 1
    await producer.send_all(topic, [Record(key, b"good"), Record(key, b"bad-" + marker)])
    partitions = list(range(kafka_settings.kafka_topic_partitions))
    partition = DefaultPartitioner()(key, partitions, partitions)
    sink = Collect()
    loop = ConsumeLoop(LoopConfig(stage, 1000, 0.2, 2, 0.01), judge, sink, KafkaDeadLetters(producer, stage))
    consumer = await start_consumer(kafka_settings, stage, [topic], loop.flush)
    await run_until(loop, consumer, lambda: bool(sink.items))
    await consumer.stop()
    await producer.stop()

    reader = AIOKafkaConsumer(DEAD_LETTER, bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
                              auto_offset_reset="earliest", group_id=None)  # fmt: skip
    await reader.start()
    found = None
    try:
        async with asyncio.timeout(15):
            while found is None:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    found = next((r for r in records if r.value == b"bad-" + marker), found)
    finally:
        await reader.stop()
    headers = {k: v for k, v in found.headers}
    assert found.key == key
    assert headers["source_topic"] == topic.encode()
    assert headers["stage"] == stage.encode()
    assert headers["reason"] == b"bad"
    assert headers["error"] == b"value starts with bad"
    assert headers["source_partition"] == str(partition).encode()
    assert headers["source_offset"] == b"1"
    assert sink.items == [b"good"]

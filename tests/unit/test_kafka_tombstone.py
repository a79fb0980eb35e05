"""A tombstone (a record with a null value) is read as empty bytes: every stage parks it as `invalid_json`,
and its dead letter has a value the dlq can index (dead_letters.value is NOT NULL)."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka import TopicPartition

from workers.kafka import KafkaConsumer, Message


class _Fake:
    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[object]]:
        record = SimpleNamespace(topic="events_raw", partition=0, offset=7, key=b"k", value=None, headers=[])
        return {TopicPartition("events_raw", 0): [record]}

    def highwater(self, tp: TopicPartition) -> int:
        return 8


async def test_a_tombstone_is_read_as_empty_bytes() -> None:
    consumer = KafkaConsumer(_Fake(), "persons", ["events_raw"], topic_check_seconds=3600)  # type: ignore[arg-type]
    assert await consumer.getmany(0.1, 10) == [Message("events_raw", 0, 7, b"k", b"", ())]

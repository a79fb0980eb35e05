"""The consumer's topic check: a broker that never answers the metadata request does not hold the consume
loop past TOPIC_CHECK_TIMEOUT_SECONDS (the check is skipped, as when the broker is down); topics that are
gone raise TopicsMissing."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import TopicPartition

from workers import kafka
from workers.kafka import KafkaConsumer, TopicsMissing


class _Broker:
    def __init__(self, topics: set[str] | None) -> None:
        self._topics = topics  # None: the metadata request never gets an answer

    async def topics(self) -> set[str]:
        if self._topics is None:
            await asyncio.Event().wait()
        return self._topics or set()

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[object]]:
        return {}


async def test_a_broker_that_never_answers_does_not_hold_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "TOPIC_CHECK_TIMEOUT_SECONDS", 0.2)
    consumer = KafkaConsumer(_Broker(None), "writer", ["events"], topic_check_seconds=0)  # type: ignore[arg-type]
    started = time.monotonic()
    assert await asyncio.wait_for(consumer.getmany(0, 10), 5) == []
    assert 0.2 <= time.monotonic() - started < 2


async def test_topics_gone_from_the_broker_raise_topics_missing() -> None:
    consumer = KafkaConsumer(_Broker({"other"}), "writer", ["events"], topic_check_seconds=0)  # type: ignore[arg-type]
    with pytest.raises(TopicsMissing, match=r"writer: topics \['events'\] are gone"):
        await consumer.getmany(0, 10)

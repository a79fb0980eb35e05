"""persons reads events_overflow only while events_raw leaves room in a fetch (a fake aiokafka consumer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from workers.kafka import EVENTS_OVERFLOW, EVENTS_RAW, PrioritizedConsumer

RAW, OVERFLOW = TopicPartition(EVENTS_RAW, 0), TopicPartition(EVENTS_OVERFLOW, 0)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes = b"{}"
    headers: tuple[Any, ...] = ()


class FakeConsumer:
    """Answers each getmany with the next of `fetches` (records per topic), minus paused partitions."""

    def __init__(self, fetches: list[dict[TopicPartition, int]]) -> None:
        self.fetches = fetches
        self._paused: set[TopicPartition] = set()
        self.offsets = {RAW: 0, OVERFLOW: 0}

    def assignment(self) -> set[TopicPartition]:
        return {RAW, OVERFLOW}

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(partitions)

    def highwater(self, tp: TopicPartition) -> None:
        return None

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        answer = {}
        for tp, count in self.fetches.pop(0).items():
            if tp not in self._paused and count:
                answer[tp] = [Record(tp.topic, 0, self.offsets[tp] + n) for n in range(count)]
                self.offsets[tp] += count
        return answer


async def test_overflow_waits_while_events_raw_fills_the_fetch_and_resumes_when_it_does_not() -> None:
    fake = FakeConsumer([{RAW: 2, OVERFLOW: 1}, {RAW: 3}, {RAW: 3}, {RAW: 1, OVERFLOW: 2}, {OVERFLOW: 3}])
    consumer = PrioritizedConsumer(fake, "persons", [EVENTS_RAW, EVENTS_OVERFLOW], 3600, [EVENTS_OVERFLOW])  # type: ignore[arg-type]
    seen = []
    for _ in range(5):
        messages = await consumer.getmany(0.1, max_records=3)
        seen.append(([m.topic for m in messages], fake.paused()))
    assert seen == [
        ([EVENTS_RAW] * 2 + [EVENTS_OVERFLOW], set()),  # events_raw leaves room: overflow is read too
        ([EVENTS_RAW] * 3, {OVERFLOW}),  # events_raw fills the fetch: overflow waits
        ([EVENTS_RAW] * 3, {OVERFLOW}),
        ([EVENTS_RAW], set()),  # overflow was paused for this fetch; events_raw left room: resumed
        ([EVENTS_OVERFLOW] * 3, set()),
    ]
    assert fake.offsets == {RAW: 9, OVERFLOW: 4}  # a paused partition's fetch takes nothing: nothing skipped

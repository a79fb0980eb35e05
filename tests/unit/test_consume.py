"""The consume loop against an in-memory consumer and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from workers.consume import BatchFailed, ConsumeLoop, LoopConfig, dead_letter_record
from workers.kafka import Message
from workers.results import DeadLetter, Drop, Ok, Result


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """Hands out queued messages; each poll advances the clock by the poll timeout when idle."""

    def __init__(self, messages: list[Message], clock: FakeClock, stopping: asyncio.Event) -> None:
        self.queue = list(messages)
        self.clock = clock
        self.stopping = stopping
        self.commits: list[dict[tuple[str, int], int]] = []
        self.polls = 0

    async def getmany(self, timeout_seconds: float, max_records: int) -> list[Message]:
        self.polls += 1
        await asyncio.sleep(0)
        if not self.queue:
            self.clock.now += max(timeout_seconds, 0.001)
            if self.polls > 200:
                self.stopping.set()
            return []
        taken, self.queue = self.queue[:max_records], self.queue[max_records:]
        return taken

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        self.commits.append(dict(offsets))


class ListSink:
    def __init__(self, fail_times: int = 0) -> None:
        self.batches: list[list[object]] = []
        self.fail_times = fail_times
        self.calls = 0

    async def write(self, items: Sequence[object]) -> None:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise ConnectionError("sink down")
        self.batches.append(list(items))


def messages(n: int, partition: int = 0, start: int = 0) -> list[Message]:
    return [Message("events", partition, start + i, b"k", f"m{start + i}".encode()) for i in range(n)]


async def echo(batch: list[Message]) -> list[Result[bytes]]:
    return [Ok(m.value) for m in batch]


def make_loop(sink, dead, process=echo, max_messages=10, max_seconds=1.0, attempts=3, overlap=False):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    config = LoopConfig("test", max_messages, max_seconds, attempts, 0.5, overlap_writes=overlap)
    return ConsumeLoop(config, process, sink, dead, clock=clock, sleep=sleep), clock, sleeps


async def test_commits_after_sink_write_with_next_offsets_per_partition() -> None:
    sink, dead = ListSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, max_messages=4)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(3, 0) + messages(1, 1, start=7), clock, stopping)
    await loop.run(consumer, stopping)
    assert sink.batches == [[b"m0", b"m1", b"m2", b"m7"]]
    assert consumer.commits == [{("events", 0): 3, ("events", 1): 8}]


async def test_batches_are_bounded_by_count() -> None:
    sink, dead = ListSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, max_messages=10)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(25), clock, stopping)
    await loop.run(consumer, stopping)
    assert [len(b) for b in sink.batches] == [10, 10, 5]
    assert [c[("events", 0)] for c in consumer.commits] == [10, 20, 25]


async def test_a_partial_batch_is_flushed_when_it_is_old_enough() -> None:
    sink, dead = ListSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, max_messages=100, max_seconds=2.0)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(3), clock, stopping)
    task = asyncio.create_task(loop.run(consumer, stopping))
    while not sink.batches:
        await asyncio.sleep(0)
    assert clock.now >= 2.0  # flushed by age, not by the stop
    assert not stopping.is_set()
    stopping.set()
    await task
    assert sink.batches == [[b"m0", b"m1", b"m2"]]


async def test_dead_letters_are_produced_before_the_commit_and_drops_are_committed() -> None:
    async def judge(batch: list[Message]) -> list[Result[bytes]]:
        out: list[Result[bytes]] = []
        for m in batch:
            if m.offset == 1:
                out.append(DeadLetter("invalid_json", "unexpected character"))
            elif m.offset == 2:
                out.append(Drop("blocked"))
            else:
                out.append(Ok(m.value))
        return out

    sink, dead = ListSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, process=judge)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(4), clock, stopping)
    await loop.run(consumer, stopping)
    assert sink.batches == [[b"m0", b"m3"]]
    [[(message, reason)]] = dead.batches  # type: ignore[misc]
    assert message.offset == 1 and reason == DeadLetter("invalid_json", "unexpected character")
    assert consumer.commits == [{("events", 0): 4}]


async def test_sink_failure_is_retried_with_backoff_then_succeeds() -> None:
    sink, dead = ListSink(fail_times=2), ListSink()
    loop, clock, sleeps = make_loop(sink, dead, attempts=5)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(2), clock, stopping)
    await loop.run(consumer, stopping)
    assert sink.batches == [[b"m0", b"m1"]]
    assert sleeps == [0.5, 1.0]
    assert consumer.commits == [{("events", 0): 2}]


async def test_persistent_sink_failure_raises_without_committing() -> None:
    sink, dead = ListSink(fail_times=100), ListSink()
    loop, clock, sleeps = make_loop(sink, dead, attempts=3)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(2), clock, stopping)
    with pytest.raises(BatchFailed, match="sink failed 3 times"):
        await loop.run(consumer, stopping)
    assert consumer.commits == []
    assert sleeps == [0.5, 1.0]


async def test_process_failure_is_an_infrastructure_failure() -> None:
    async def broken(batch: list[Message]) -> list[Result[bytes]]:
        raise OSError("postgres down")

    sink, dead = ListSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, process=broken, attempts=2)
    stopping = asyncio.Event()
    with pytest.raises(BatchFailed):
        await loop.run(FakeConsumer(messages(1), clock, stopping), stopping)
    assert sink.batches == []


async def test_revocation_flushes_and_commits_what_was_taken() -> None:
    sink, dead = ListSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, max_messages=100, max_seconds=60.0)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(5), clock, stopping)
    task = asyncio.create_task(loop.run(consumer, stopping))
    while consumer.polls < 3:
        await asyncio.sleep(0)
    assert sink.batches == []  # held back: neither full nor old
    await loop.flush()  # what the rebalance listener calls on revocation
    assert sink.batches == [[b"m0", b"m1", b"m2", b"m3", b"m4"]]
    assert consumer.commits == [{("events", 0): 5}]
    stopping.set()
    await task
    assert len(consumer.commits) == 1


async def test_stop_flushes_pending_messages() -> None:
    sink, dead = ListSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, max_messages=100, max_seconds=60.0)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(3), clock, stopping)
    task = asyncio.create_task(loop.run(consumer, stopping))
    while consumer.polls < 2:
        await asyncio.sleep(0)
    stopping.set()
    await task
    assert sink.batches == [[b"m0", b"m1", b"m2"]]
    assert consumer.commits == [{("events", 0): 3}]


def test_dead_letter_record_keeps_the_original_bytes_and_says_where_they_came_from() -> None:
    message = Message("events_raw", 3, 42, b"tok:user", b"\x00not json")
    record = dead_letter_record(
        message, DeadLetter("invalid_json", "boom"), "persons", datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert record.key == b"tok:user" and record.value == b"\x00not json"
    headers = dict(record.headers)
    assert headers["source_topic"] == b"events_raw"
    assert headers["source_partition"] == b"3"
    assert headers["source_offset"] == b"42"
    assert headers["stage"] == b"persons"
    assert headers["reason"] == b"invalid_json"
    assert headers["error"] == b"boom"
    assert headers["time"].startswith(b"2026-01-01T00:00:00")


class SlowSink(ListSink):
    """Each write takes a few event-loop turns, so the loop can poll the next batch meanwhile."""

    def __init__(self, fail_on_call: int = 0) -> None:
        super().__init__()
        self.fail_on_call = fail_on_call
        self.started: list[int] = []

    async def write(self, items: Sequence[object]) -> None:
        self.calls += 1
        self.started.append(self.calls)
        for _ in range(5):
            await asyncio.sleep(0)
        if self.calls == self.fail_on_call:
            raise ConnectionError("sink down")
        self.batches.append(list(items))


async def test_overlapped_writes_commit_in_order_and_cover_everything() -> None:
    sink, dead = SlowSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, max_messages=10, overlap=True)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(35), clock, stopping)
    await loop.run(consumer, stopping)
    assert [len(b) for b in sink.batches] == [10, 10, 10, 5]
    assert [c[("events", 0)] for c in consumer.commits] == [10, 20, 30, 35]


async def test_overlapped_write_failure_stops_the_loop_before_later_commits() -> None:
    sink, dead = SlowSink(fail_on_call=2), ListSink()
    loop, clock, _ = make_loop(sink, dead, max_messages=10, attempts=1, overlap=True)
    stopping = asyncio.Event()
    consumer = FakeConsumer(messages(40), clock, stopping)
    with pytest.raises(BatchFailed, match="sink failed"):
        await loop.run(consumer, stopping)
    assert consumer.commits == [{("events", 0): 10}]  # the failed batch and those after it: not committed

"""The consume loop against an in-memory consumer and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from workers.consume import (
    BatchFailed,
    ConsumeLoop,
    DeadLetterLimitExceeded,
    DeadLetterLimits,
    LoopConfig,
    dead_letter_record,
)
from workers.errors import DataError
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


NO_LIMITS = DeadLetterLimits()


def make_loop(sink, dead, process=echo, max_messages=10, max_seconds=1.0, attempts=3, overlap=False,  # type: ignore[no-untyped-def]
              limits=NO_LIMITS):  # fmt: skip
    clock = FakeClock()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    config = LoopConfig(
        "test", max_messages, max_seconds, attempts, 0.5, overlap_writes=overlap, limits=limits
    )
    loop = ConsumeLoop(config, process, sink, dead, clock=clock, sleep=sleep, jitter=lambda: 1.0)
    return loop, clock, sleeps


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


class RefusingSink(ListSink):
    """A store that refuses any write holding a poisoned value, as Postgres refuses U+0000."""

    async def write(self, items: Sequence[object]) -> None:
        self.calls += 1
        if any(b"poison" in item for item in items):  # type: ignore[operator]
            raise asyncpg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00')
        self.batches.append(list(items))


def poisoned(n: int, bad: set[int]) -> list[Message]:
    return [Message("events", 0, i, b"k", b"poison" if i in bad else f"m{i}".encode()) for i in range(n)]


async def test_a_value_the_store_refuses_is_isolated_and_parked_and_the_rest_is_written() -> None:
    sink, dead = RefusingSink(), ListSink()
    loop, clock, sleeps = make_loop(sink, dead, max_messages=8)
    stopping = asyncio.Event()
    consumer = FakeConsumer(poisoned(8, {2, 5}), clock, stopping)
    await loop.run(consumer, stopping)
    written = sorted(v for batch in sink.batches for v in batch)  # type: ignore[type-var]
    assert written == [b"m0", b"m1", b"m3", b"m4", b"m6", b"m7"]
    [parked] = dead.batches
    assert [(m.offset, d.reason) for m, d in parked] == [(2, "postgres_refused"), (5, "postgres_refused")]  # type: ignore[attr-defined]
    assert "22021" in parked[0][1].error and "0x00" in parked[0][1].error  # type: ignore[index]
    assert sleeps == []  # a data error is never retried as an outage
    assert consumer.commits == [{("events", 0): 8}]


async def test_a_message_the_process_step_cannot_handle_is_isolated_in_order() -> None:
    seen: list[list[int]] = []

    async def fragile(batch: list[Message]) -> list[Result[bytes]]:
        seen.append([m.offset for m in batch])
        if any(m.value == b"poison" for m in batch):
            raise DataError("postgres_refused", "22P05 unsupported Unicode escape sequence")
        return [Ok(m.value) for m in batch]

    sink, dead = ListSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, process=fragile, max_messages=4)
    stopping = asyncio.Event()
    await loop.run(FakeConsumer(poisoned(4, {1}), clock, stopping), stopping)
    assert seen == [
        [0, 1, 2, 3],
        [0, 1],
        [0],
        [1],
        [2, 3],
    ]  # halves in order: a person's events stay in order
    assert sink.batches == [[b"m0", b"m2", b"m3"]]
    [[(message, reason)]] = dead.batches  # type: ignore[misc]
    assert message.offset == 1
    assert reason == DeadLetter("postgres_refused", "22P05 unsupported Unicode escape sequence")


async def test_a_bug_on_one_message_parks_that_message() -> None:
    async def buggy(batch: list[Message]) -> list[Result[bytes]]:
        return [Ok(m.value.decode()["x"]) if m.value == b"poison" else Ok(m.value) for m in batch]  # type: ignore[index]

    sink, dead = ListSink(), ListSink()
    loop, clock, _ = make_loop(sink, dead, process=buggy, max_messages=3)
    stopping = asyncio.Event()
    await loop.run(FakeConsumer(poisoned(3, {0}), clock, stopping), stopping)
    [[(message, reason)]] = dead.batches  # type: ignore[misc]
    assert (message.offset, reason.reason) == (0, "process_failed")
    assert reason.error == "TypeError: string indices must be integers, not 'str'"
    assert sink.batches == [[b"m1", b"m2"]]


def judge_every(bad_reason: str):  # type: ignore[no-untyped-def]
    async def judge(batch: list[Message]) -> list[Result[bytes]]:
        return [DeadLetter(bad_reason, "x") if m.value == b"poison" else Ok(m.value) for m in batch]

    return judge


async def test_too_many_dead_letters_in_a_row_stop_the_loop_without_committing() -> None:
    sink, dead = ListSink(), ListSink()
    limits = DeadLetterLimits(max_ratio=1.0, window=1000, max_consecutive=5)
    loop, clock, _ = make_loop(sink, dead, process=judge_every("invalid_json"), max_messages=4, limits=limits)
    stopping = asyncio.Event()
    consumer = FakeConsumer(poisoned(3, {2}) + poisoned(8, set(range(8)))[3:], clock, stopping)
    with pytest.raises(DeadLetterLimitExceeded, match="DLQ_MAX_CONSECUTIVE=5 reached: 5 messages in a row"):
        await loop.run(consumer, stopping)
    assert consumer.commits == [
        {("events", 0): 4}
    ]  # the first batch (2 good, 2 parked); not the one past the limit


async def test_too_large_a_share_of_dead_letters_stops_the_loop() -> None:
    sink, dead = ListSink(), ListSink()
    limits = DeadLetterLimits(max_ratio=0.5, window=10, max_consecutive=1000)
    loop, clock, _ = make_loop(
        sink, dead, process=judge_every("invalid_json"), max_messages=10, limits=limits
    )
    stopping = asyncio.Event()
    consumer = FakeConsumer(poisoned(10, {0, 2, 4, 6, 8, 9}), clock, stopping)
    with pytest.raises(DeadLetterLimitExceeded, match=r"DLQ_MAX_RATIO=0\.5 exceeded: 6 of the last 10"):
        await loop.run(consumer, stopping)
    assert (consumer.commits, dead.batches, sink.batches) == ([], [], [])  # nothing of it written


async def test_a_limit_crossed_by_what_the_sink_refuses_stops_the_loop_too() -> None:
    sink, dead = RefusingSink(), ListSink()
    limits = DeadLetterLimits(max_ratio=1.0, window=1000, max_consecutive=3)
    loop, clock, _ = make_loop(sink, dead, max_messages=4, limits=limits)
    stopping = asyncio.Event()
    consumer = FakeConsumer(poisoned(4, {1, 2, 3}), clock, stopping)
    with pytest.raises(DeadLetterLimitExceeded, match="DLQ_MAX_CONSECUTIVE=3 reached"):
        await loop.run(consumer, stopping)
    assert (consumer.commits, dead.batches) == ([], [])


async def test_client_reasons_do_not_count_towards_the_limits() -> None:
    sink, dead = ListSink(), ListSink()
    limits = DeadLetterLimits(max_ratio=0.1, window=10, max_consecutive=2)
    loop, clock, _ = make_loop(
        sink, dead, process=judge_every("junk_distinct_id"), max_messages=10, limits=limits
    )
    stopping = asyncio.Event()
    consumer = FakeConsumer(poisoned(20, set(range(20))), clock, stopping)
    await loop.run(consumer, stopping)
    assert sum(len(b) for b in dead.batches) == 20
    assert consumer.commits == [{("events", 0): 10}, {("events", 0): 20}]

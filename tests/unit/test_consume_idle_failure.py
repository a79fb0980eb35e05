"""A batch written and committed in the background (overlap_writes, the writer) that fails stops the loop
at once, even when no further message comes: the broker is down, say (tests/faults/test_broker_restart.py
found the writer running on for good after its commit had failed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from workers.consume import BatchFailed, ConsumeLoop, LoopConfig
from workers.kafka import Message
from workers.results import Ok, Result


class OneBatchConsumer:
    """Ten messages, then nothing, ever; every commit fails (never sets `stopping` itself)."""

    def __init__(self) -> None:
        self.given = False
        self.polls = 0

    async def getmany(self, timeout_seconds: float, max_records: int) -> list[Message]:
        self.polls += 1
        await asyncio.sleep(0.001)
        if self.given:
            return []
        self.given = True
        return [Message("events", 0, i, b"k", b"v") for i in range(10)]

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        raise ConnectionError("the broker is gone")


class Sink:
    async def write(self, items: Sequence[object]) -> None:
        pass


async def echo(batch: list[Message]) -> list[Result[bytes]]:
    return [Ok(m.value) for m in batch]


async def nap(seconds: float) -> None:
    await asyncio.sleep(0)


async def test_a_failed_background_commit_stops_the_loop_while_no_message_comes() -> None:
    config = LoopConfig("test", 10, 1.0, 2, 0.5, poll_seconds=0.001, overlap_writes=True)
    loop = ConsumeLoop(config, echo, Sink(), Sink(), sleep=nap, jitter=lambda: 1.0)  # type: ignore[arg-type]
    consumer = OneBatchConsumer()
    with pytest.raises(BatchFailed, match="commit failed 2 times: ConnectionError"):
        await asyncio.wait_for(loop.run(consumer, asyncio.Event()), 5)
    assert consumer.polls < 10

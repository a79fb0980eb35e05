"""A worker that outlives its drain timeout logs where it is waiting (`drain_timeout`'s `stuck_at`): the
whole chain of coroutines, down to the innermost."""

from __future__ import annotations

import asyncio

from workers.runtime import _where


async def _waits_on_the_broker(never: asyncio.Event) -> None:
    await never.wait()


async def _consume_loop(never: asyncio.Event) -> None:
    await _waits_on_the_broker(never)


async def test_stuck_at_names_every_await_down_to_the_innermost() -> None:
    task = asyncio.create_task(_consume_loop(asyncio.Event()))
    await asyncio.sleep(0)
    try:
        names = [line.rsplit(" in ", 1)[-1] for line in _where(task).splitlines()]
        assert names == ["_consume_loop", "_waits_on_the_broker", "wait"], names
    finally:
        task.cancel()

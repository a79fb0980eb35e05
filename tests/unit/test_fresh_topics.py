"""FreshTopics: every caller gets the answer of a fetch that began after it asked, and callers share
fetches."""

from __future__ import annotations

import asyncio

from workers.kafka import FreshTopics


async def test_each_caller_gets_a_fetch_that_began_after_it_asked() -> None:
    fetches = 0

    async def fetch() -> set[str]:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.01)
        return {f"fetch-{fetches}"}

    fresh = FreshTopics(fetch)
    assert await fresh.get() == {"fetch-1"}  # the first caller, with no fetch running
    # the first of these starts fetch 2; the others asked while it ran, so they share fetch 3
    assert await asyncio.gather(*(fresh.get() for _ in range(5))) == [{"fetch-2"}] + [{"fetch-3"}] * 4
    assert await fresh.get() == {"fetch-4"}
    assert fetches == 4


async def test_a_failed_fetch_fails_its_callers_only() -> None:
    answers: list[object] = [OSError("broker down"), {"events_raw"}]

    async def fetch() -> set[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    fresh = FreshTopics(fetch)
    try:
        await fresh.get()
    except OSError as exc:
        assert str(exc) == "broker down"
    else:
        raise AssertionError("the failed fetch was not raised")
    assert await fresh.get() == {"events_raw"}

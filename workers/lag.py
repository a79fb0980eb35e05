"""Consumer lag that stays right on Tansu, whose end offsets are wrong after multi-record batches.

The offsets a broker acknowledges to a producer are right. Every producing process reports, every
HEARTBEAT_SECONDS, the offset after the highest it had acknowledged on each topic partition
(`Producer.produced`) to Postgres `kafka_produced_offsets`; a partition's end is the highest reported within
the last `fresh_seconds`, and a group's lag on it is that end minus the group's committed offset. capture's
heartbeats reach every partition of `events_raw` and persons passes them on to the same partition of
`events`, so those ends are never older than a heartbeat, whoever else produced there (a dlq replay, another
capture). The lag is measured against what the group committed, not against what a process holds in memory:
a stage reports its own partitions on its /metrics, and `python -m workers status` reads every group's,
stopped ones included. The Flink job's output topics have no producer reporting: no lag for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
import structlog

from workers import opsql
from workers.metrics import CONSUMER_LAG

log = structlog.get_logger(__name__)

Offsets = Mapping[tuple[str, int], int]


def fresh_seconds(heartbeat_seconds: float) -> float:
    """How long a producer's report counts: a process that stopped reporting (or a broker that came back
    empty, after which the producers report anew) drops out after this."""
    return max(60.0, 5 * heartbeat_seconds)


async def publish(pool: asyncpg.Pool, producer: str, produced: Offsets) -> None:
    keys = sorted(produced)
    topics, partitions = [t for t, _ in keys], [p for _, p in keys]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(opsql.postgres("forget_offsets.sql"), producer, topics, partitions)
        if keys:
            offsets = [produced[k] for k in keys]
            await conn.execute(opsql.postgres("publish_offsets.sql"), producer, topics, partitions, offsets)


async def end_offsets(pool: asyncpg.Pool, fresh: float) -> dict[tuple[str, int], int]:
    rows = await pool.fetch(opsql.postgres("end_offsets.sql"), fresh)
    return {(r["topic"], r["partition"]): r["end_offset"] for r in rows}


def lag(ends: Offsets, committed: Offsets) -> dict[tuple[str, int], int]:
    """Messages behind, for each committed partition whose end is known."""
    return {tp: max(0, ends[tp] - offset) for tp, offset in committed.items() if tp in ends}


async def track(
    pool: asyncpg.Pool,
    producer: str,
    produced: Offsets,
    every: float,
    stopping: asyncio.Event,
    stage: str | None = None,
    committed: Callable[[], Awaitable[Offsets]] | None = None,
) -> None:
    """Until `stopping`: every `every` seconds report what this process produced and, for a consuming
    stage, set ua_consumer_lag_messages for its partitions. A failure is logged and tried again next time."""
    shown: set[tuple[str, int]] = set()
    while not stopping.is_set():
        try:
            await publish(pool, producer, produced)
            if stage is not None and committed is not None:
                behind = lag(await end_offsets(pool, fresh_seconds(every)), await committed())
                for topic, partition in shown - behind.keys():
                    CONSUMER_LAG.remove(stage, topic, str(partition))
                for (topic, partition), messages in behind.items():
                    CONSUMER_LAG.labels(stage, topic, str(partition)).set(messages)
                shown = set(behind)
        except Exception as exc:  # a measurement; never a reason to stop the stage
            log.warning("lag_failed", stage=stage, error=f"{type(exc).__name__}: {exc}")
        try:
            await asyncio.wait_for(stopping.wait(), every)
        except TimeoutError:
            pass

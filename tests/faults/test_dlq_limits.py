"""The DLQ limits on the real persons worker: a burst of messages it can never process stops it (exit 1,
`dead_letter_limit`, `worker_failed` naming the limit) without committing the batch that crossed the
limit, and once the limit is raised and persons restarted the rest is processed, each message once. Client
reasons (a junk distinct id) never count towards the limits."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.components import Tansu, wait_until
from tests.faults.stack import TOKEN, Stack
from tests.faults.topics import committed, consumed, metrics, produce, raw_event, read_all

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.clickhouse]

BEFORE = 10  # good events persons processes and commits before the burst
AFTER = 10  # good events right behind the burst


async def project_of(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT id FROM projects WHERE api_token = $1", TOKEN))
    finally:
        await conn.close()


async def parked_offsets(dsn: str, reason: str) -> list[int]:
    """The events_raw offsets (partition 0) the dlq worker indexed with this reason."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT source_offset FROM dead_letters WHERE source_topic = 'events_raw' AND source_partition = 0"
            " AND reason = $1 ORDER BY source_offset",
            reason,
        )
    finally:
        await conn.close()
    return [r["source_offset"] for r in rows]


def uuids(values: list[bytes]) -> list[str]:
    return [orjson.loads(v)["uuid"] for v in values]


async def stop_on_burst(
    stack: Stack, bootstrap: str, burst: list[bytes], limit: str, raised: dict[str, str]
) -> None:
    """Good events, then the burst followed by good events, all in partition 0 of events_raw: persons
    stops at the limit with the burst uncommitted; with the limit raised it processes the rest once."""
    project = await project_of(stack.env["POSTGRES_DSN"])
    before = [raw_event(project, f"user-{n}") for n in range(BEFORE)]
    after = [raw_event(project, f"user-{n}") for n in range(AFTER)]
    bad = sum(1 for v in burst if not v.startswith(b"{"))

    async def committed_at(offset: int) -> bool:
        return (await committed(bootstrap, "persons", "events_raw"))[0] == offset

    await produce(bootstrap, "events_raw", before)
    assert await wait_until(lambda: committed_at(BEFORE), timeout=30, interval=0.2)
    started = time.monotonic()
    await produce(bootstrap, "events_raw", burst + after)
    assert stack.wait_exit("persons", 30) == 1
    stopped = time.monotonic() - started

    lines = stack.log("persons")
    limits = [line["limit"] for line in lines if line["event"] == "dead_letter_limit"]
    assert len(limits) == 1 and limits[0].startswith(limit), limits
    failed = [line["error"] for line in lines if line["event"] == "worker_failed"]
    assert len(failed) == 1 and failed[0].startswith(f"DeadLetterLimitExceeded: persons: {limit}"), failed
    assert [line["exit_code"] for line in lines if line["event"] == "worker_stopped"] == [1]
    # the batch that crossed the limit is not committed, and its dead letters were never written
    crossed_at = (await committed(bootstrap, "persons", "events_raw"))[0]
    written = len(await read_all(bootstrap, "dead_letter"))
    parked_before = sum(1 for v in burst[: crossed_at - BEFORE] if not v.startswith(b"{"))
    print(f"\n{limit}: persons exited 1 {stopped:.1f}s after the burst; committed {crossed_at - BEFORE} of"
          f" the burst's {len(burst)}; {written} dead letters written; {limits[0]}")  # fmt: skip
    assert BEFORE <= crossed_at < BEFORE + len(burst)
    assert written == parked_before

    stack.env.update(raised)
    stack.start("persons")
    end = BEFORE + len(burst) + AFTER
    assert await wait_until(lambda: committed_at(end), timeout=30, interval=0.2)
    samples = await metrics(stack.url("PERSONS_METRICS_PORT", "/metrics"))
    uncommitted = end - crossed_at
    assert sum(consumed(samples, "persons").values()) == uncommitted  # from the committed offset on, once
    assert len(await read_all(bootstrap, "dead_letter")) == bad  # each bad message parked once
    assert await wait_until(lambda: _count(parked_offsets(stack.env["POSTGRES_DSN"], "invalid_json"), bad))
    events = uuids(await read_all(bootstrap, "events"))
    good = uuids(before + [v for v in burst if v.startswith(b"{")] + after)
    assert sorted(events) == sorted(good)  # once each: nothing of the batch past the limit was written
    print(f"restarted with {raised}: processed the {uncommitted} uncommitted messages once"
          f" ({consumed(samples, 'persons')}); events holds {len(events)} messages for {len(good)} events")  # fmt: skip


async def _count(offsets, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await offsets) == expected


async def test_a_burst_past_dlq_max_consecutive_stops_persons_uncommitted(
    broker: Tansu, dsn: str, tmp_path: Path
) -> None:
    burst = [b"not json %d" % n for n in range(120)]
    with Stack(tmp_path, broker.bootstrap, dsn, ["persons", "dlq"], dlq_max_consecutive=50) as stack:
        await stop_on_burst(
            stack, broker.bootstrap, burst, "DLQ_MAX_CONSECUTIVE=50 reached", {"DLQ_MAX_CONSECUTIVE": "1000"}
        )
        assert await parked_offsets(dsn, "invalid_json") == list(range(BEFORE, BEFORE + len(burst)))


async def test_a_share_past_dlq_max_ratio_stops_persons_uncommitted(
    broker: Tansu, dsn: str, tmp_path: Path
) -> None:
    with Stack(tmp_path, broker.bootstrap, dsn, ["persons", "dlq"], dlq_window_messages=20, dlq_max_ratio=0.5,
               dlq_max_consecutive=1000) as stack:  # fmt: skip
        project = await project_of(dsn)
        # 70% bad, interleaved: never more than 3 in a row
        burst = [
            raw_event(project, f"user-{n}") if n % 10 in (2, 5, 8) else b"not json %d" % n for n in range(100)
        ]
        await stop_on_burst(
            stack, broker.bootstrap, burst, "DLQ_MAX_RATIO=0.5 exceeded", {"DLQ_MAX_RATIO": "1.0"}
        )
        bad = [BEFORE + n for n, v in enumerate(burst) if not v.startswith(b"{")]
        assert await parked_offsets(dsn, "invalid_json") == bad


async def test_client_reasons_never_trip_the_limits(broker: Tansu, dsn: str, tmp_path: Path) -> None:
    junk = ["undefined", "null", "anonymous", "0", "[object Object]", "guest", "NaN", "distinct_id"]
    with Stack(tmp_path, broker.bootstrap, dsn, ["capture", "persons", "dlq"], dlq_max_consecutive=50,
               dlq_window_messages=20, dlq_max_ratio=0.5) as stack:  # fmt: skip
        events = [{"event": "$pageview", "distinct_id": junk[n % len(junk)], "properties": {"n": n}}
                  for n in range(200)]  # fmt: skip
        assert await stack.send_posthog(events) == 200  # 200 in a row, far past both limits
        assert (
            await stack.send_posthog([{"event": "$pageview", "distinct_id": f"user-{n}"} for n in range(10)])
            == 200
        )

        async def done() -> bool:
            samples = await metrics(stack.url("PERSONS_METRICS_PORT", "/metrics"))
            return consumed(samples, "persons") == {"ok": 10, "dead_letter": 200}

        assert await wait_until(done, timeout=30, interval=0.2)
        conn = await asyncpg.connect(dsn)
        try:

            async def indexed() -> list[asyncpg.Record]:
                return await conn.fetch("SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason")

            assert await wait_until(lambda: _equal(indexed(), [("junk_distinct_id", 200)]), timeout=30)
        finally:
            await conn.close()
        with pytest.raises(TimeoutError):
            stack.wait_exit("persons", 2)
        assert stack.running("persons")
        assert not [line for line in stack.log("persons") if line["event"] == "dead_letter_limit"]


async def _equal(rows, expected: list[tuple[object, ...]]) -> bool:  # type: ignore[no-untyped-def]
    return [tuple(r) for r in await rows] == expected

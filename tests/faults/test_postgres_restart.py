"""Postgres (a cluster of the test's own) restarted twice while events flow through capture: stopped `fast`,
then `immediate` (a crash: recovery at start), each time down for OUTAGE_SECONDS, longer than persons'
retry budget here, with the supervisor's autorestart on.

What happens, asserted:
- persons retries (batch_retry), and once past its budget exits non-zero and is restarted (a restart while
  Postgres is still down fails at once, at its migration, and is restarted again); it never parks a
  message for Postgres: the only dead letters are the junk ids, in the topic and in the index.
- capture keeps answering 200 for its project: it caches projects (PROJECT_CACHE_SECONDS) and a request
  needs Postgres only for a token it has no fresh answer for. Such a token (a project created before the
  outage that capture has not seen yet, or no project's) is answered 503 with Retry-After while Postgres
  is down, never 200 nor 401; once it is back, the first is accepted and the second refused (401).
- the writer and capture never exit; every accepted event is stored exactly once, and the persons in
  Postgres and ClickHouse group the distinct ids as the events' links do.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.components import PostgresCluster, Tansu, wait_until
from tests.faults.stack import Stack
from tests.faults.traffic import (
    Sender,
    assert_same,
    build,
    clickhouse_ids,
    dead_letter_reasons,
    dead_letters,
    partition,
    postgres_ids,
    stored_at_least,
)
from workers.projects import ensure_project

pytestmark = [
    pytest.mark.faults,
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.clickhouse,
    pytest.mark.slow,
]

SEED = 11
EVENTS = 30_000
RATE = 600  # events a second: the sending lasts ~55 s, across both outages
BATCH = 100
SENDERS = 4
OUTAGES = (("fast", 6.0), ("immediate", 26.0))  # (stop mode, seconds after the first request)
OUTAGE_SECONDS = 10.0
# persons' budget: 6 attempts, pauses of 0.2, 0.4, 0.8, 1.6 and 3.2 s times a jitter in [0.5, 1]: it gives up
# 3.1 to 6.2 s into an outage. Projects are cached longer than the test: the faults project stays warm.
SETTINGS: dict[str, Any] = {"sink_retry_attempts": 6, "sink_retry_backoff_seconds": 0.2,
                            "project_cache_seconds": 600}  # fmt: skip
COLD_TOKEN = "cold-token-{}"  # per outage, a project capture has not looked up before it


def logged(stack: Stack, name: str, event: str, since: float, until: float) -> list[dict[str, Any]]:
    """The worker's log lines of that event between two time.time() instants."""
    return [
        line
        for line in stack.log(name)
        if line["event"] == event and since <= datetime.fromisoformat(line["timestamp"]).timestamp() <= until
    ]


def exits(stack: Stack, name: str) -> list[int]:
    codes = []
    while True:
        try:
            codes.append(stack.wait_exit(name, 0))
        except TimeoutError:
            return codes


async def post(url: str, token: str, distinct_id: str) -> tuple[int, str | None]:
    body = {"api_key": token, "batch": [{"event": "probe", "distinct_id": distinct_id}]}
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        return response.status, response.headers.get("Retry-After")


async def test_postgres_restarts_while_events_flow(
    broker: Tansu, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    dsn = await postgres_cluster.create_database()
    traffic = build(SEED, EVENTS, persons=10_000)
    expected = traffic.partition
    began = time.monotonic()
    workers = ["capture", "persons", "writer", "dlq"]
    with Stack(tmp_path, broker.bootstrap, dsn, workers, **SETTINGS) as stack:
        conn = await asyncpg.connect(dsn)
        for mode, _ in OUTAGES:
            await ensure_project(conn, mode, api_token=COLD_TOKEN.format(mode), api_key=f"cold-key-{mode}")
        await conn.close()
        stack.autorestart = True
        url = stack.url("CAPTURE_PORT", "/batch/")
        sender = Sender(url, traffic.batches(BATCH), rate=RATE)
        sending = asyncio.create_task(sender.run(SENDERS, deadline_seconds=240))
        started = time.monotonic()
        windows: list[tuple[str, float, float]] = []  # (mode, time.time() of the stop, of the start's end)
        restarts_called: list[float] = []  # time.monotonic(), as the answers are timed
        cold: list[Sender] = []
        cold_tasks = []
        unknown = []
        for mode, at in OUTAGES:
            await asyncio.sleep(started + at - time.monotonic())
            stopping = time.time()
            await asyncio.to_thread(postgres_cluster.stop, mode)
            await asyncio.sleep(2)
            probe = [{"event": "cold", "distinct_id": f"cold-{mode}-{n}", "uuid": None} for n in range(20)]
            for n, event in enumerate(probe):
                event["uuid"] = f"00000000-0000-4000-8000-{len(cold):06d}{n:06d}"
            cold.append(Sender(url, [probe], token=COLD_TOKEN.format(mode)))
            cold_tasks.append(asyncio.create_task(cold[-1].run(1, deadline_seconds=120)))
            unknown.append(await post(url, "no-such-token", f"unknown-{mode}"))
            await asyncio.sleep(stopping + OUTAGE_SECONDS - time.time())
            restarts_called.append(time.monotonic())
            await asyncio.to_thread(postgres_cluster.start)
            windows.append((mode, stopping, time.time()))
        await sending
        await asyncio.gather(*cold_tasks)
        sent = time.monotonic() - began
        after = await post(url, "no-such-token", "unknown-after")

        assert not sender.unexpected
        assert set(sender.statuses) == {200}  # a warm project cache: never a 503, not even while down
        accepted = set(sender.accepted)
        assert accepted == traffic.uuids
        for probe_sender, restart_called in zip(cold, restarts_called, strict=True):
            answers = probe_sender.answers
            assert answers[0].status == 503 and answers[0].retry_after == "2", answers[0]
            assert all(a.status == 503 for a in answers if a.ended < restart_called), answers
            assert answers[-1].status == 200 and not probe_sender.unexpected, answers
        assert unknown == [(503, "2")] * len(OUTAGES)  # while down capture cannot tell: 503, not 401
        assert after == (401, None)

        stored = (accepted - traffic.junk) | {u for s in cold for u in s.accepted}
        assert await wait_until(lambda: stored_at_least(stack, len(stored)), timeout=120, interval=1)
        named = set().union(*expected)

        async def settled() -> bool:
            """Every event stored, and ClickHouse's persons as Postgres's (the writer may still be
            applying the last versions of persons the restarts made it write again)."""
            ch_ids = await clickhouse_ids(stack)
            return (
                await stack.count() == len(stored)
                and ch_ids[0].keys() == named
                and ch_ids == await postgres_ids(dsn)
                and {u for u, _ in await dead_letters(dsn)} == traffic.junk
            )

        await wait_until(settled, timeout=60, interval=1)  # the asserts below say what is wrong
        assert_same("stored events", await stack.stored_uuids(), sorted(stored))
        pg_ids, pg_persons = await postgres_ids(dsn)
        assert partition(pg_ids.items()) == expected
        assert pg_persons == set(pg_ids.values())
        assert await clickhouse_ids(stack) == (pg_ids, pg_persons)
        # nothing parked for Postgres: the junk ids only, in the index and in the topic itself
        assert {(u, r) for u, r in await dead_letters(dsn)} == {(u, "junk_distinct_id") for u in traffic.junk}
        reasons = await dead_letter_reasons(broker.bootstrap)
        assert set(reasons) == {"junk_distinct_id"} and len(reasons) >= len(traffic.junk)

        codes = {name: exits(stack, name) for name in workers}
        assert codes["capture"] == codes["writer"] == []
        assert all(code == 1 for code in codes["persons"] + codes["dlq"]), codes
        assert stack.restarts == {name: len(codes[name]) for name in workers}
        for mode, stopping, back in windows:
            retries = [
                r for r in logged(stack, "persons", "batch_retry", stopping, back) if r["stage"] == "persons"
            ]
            failed = logged(stack, "persons", "batch_failed", stopping, back)
            assert retries and failed, mode  # retried, then gave up past the budget: exited non-zero
            first = datetime.fromisoformat(failed[0]["timestamp"]).timestamp() - stopping
            print(f"\n{mode}: down {back - stopping:.1f} s; persons retried {len(retries)} times and gave up"
                  f" {first:.1f} s in")  # fmt: skip
        print(
            f"postgres restarts: {len(traffic.events)} events + {sum(len(s.accepted) for s in cold)} cold,"
            f" {len(stored)} stored; exits {codes}; restarts {stack.restarts}; main requests"
            f" {dict(sender.statuses)}; cold requests {[dict(s.statuses) for s in cold]}; sent in {sent:.1f} s,"
            f" settled in {time.monotonic() - began:.1f} s"
        )

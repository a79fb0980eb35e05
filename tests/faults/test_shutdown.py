"""SIGTERM under load on the real workers: while a sender streams events through capture, capture,
persons, the writer and the dlq worker are each stopped with SIGTERM and restarted in turn. Each drains
and exits 0 within DRAIN_TIMEOUT_SECONDS; at the end every event capture answered 200 for is stored once,
each consumer group has committed everything, and no restarted consumer processed a message again."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from tests.components import Tansu, wait_until
from tests.faults.stack import TOKEN, Stack
from tests.faults.topics import committed, consumed, metrics, read_all

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.clickhouse]

DRAIN_TIMEOUT = 10.0
USERS = 50
JUNK_EVERY = 20  # one event in 20 has the distinct id "undefined": persons parks it, the dlq indexes it
CONSUMES = {"persons": ["events_raw"], "writer": ["events", "persons", "person_distinct_ids"], "dlq": ["dead_letter"]}  # fmt: skip


class Sender:
    """Posts batches of events to capture until stopped; remembers what was answered 200."""

    def __init__(self, stack: Stack) -> None:
        self._url = stack.url("CAPTURE_PORT", "/batch/")
        self.accepted: list[dict[str, object]] = []
        self.statuses: Counter[str] = Counter()
        self.stopping = asyncio.Event()
        self._start = datetime.now(UTC) - timedelta(hours=1)
        self._n = 0
        self.in_flight = 0
        self.requests: list[tuple[float, float, str]] = []  # (began, answered, status)

    def during(self, instant: float) -> Counter[str]:
        """The statuses of the requests on their way at that instant."""
        return Counter(status for began, answered, status in self.requests if began <= instant <= answered)

    def _batch(self, size: int = 20) -> list[dict[str, object]]:
        events = []
        for _ in range(size):
            n, self._n = self._n, self._n + 1
            distinct_id = "undefined" if n % JUNK_EVERY == JUNK_EVERY - 1 else f"user-{n % USERS}"
            events.append({"event": "$pageview", "distinct_id": distinct_id, "uuid": str(uuid.uuid4()),
                           "timestamp": (self._start + timedelta(milliseconds=n)).isoformat(),
                           "properties": {"n": n}})  # fmt: skip
        return events

    async def run(self, concurrency: int = 4) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await asyncio.gather(*(self._loop(http) for _ in range(concurrency)))

    async def _loop(self, http: aiohttp.ClientSession) -> None:
        while not self.stopping.is_set():
            events = self._batch()
            self.in_flight += 1
            began = time.monotonic()
            try:
                async with http.post(self._url, json={"api_key": TOKEN, "batch": events}) as response:
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            finally:
                self.in_flight -= 1
            self.requests.append((began, time.monotonic(), status))
            self.statuses[status] += 1
            if status == "200":
                self.accepted += events
            await asyncio.sleep(0.1)


async def offsets(bootstrap: str, stage: str) -> int:
    """The stage's committed offsets, summed over its topics and partitions."""
    return sum([sum((await committed(bootstrap, stage, topic)).values()) for topic in CONSUMES[stage]])


async def test_sigterm_under_load_drains_and_loses_or_repeats_nothing(
    broker: Tansu, dsn: str, tmp_path: Path
) -> None:
    workers = ["capture", "persons", "writer", "dlq"]
    with Stack(tmp_path, broker.bootstrap, dsn, workers, drain_timeout_seconds=DRAIN_TIMEOUT) as stack:
        sender = Sender(stack)
        sending = asyncio.create_task(sender.run())
        await asyncio.sleep(3)
        at_exit: dict[str, int] = {}  # a consumer's committed offsets when its first process had exited
        figures = []
        for name in workers:
            accepted = len(sender.accepted)
            # a request on its way, its bytes given 2 ms to reach capture, for capture to finish while it
            # drains (one that arrives after the drain began finds the connection closed: not a 200, and
            # none of its events may be taken, which the checks below see)
            while sender.in_flight == 0:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.002)
            started = time.monotonic()
            stack.kill(name, signal.SIGTERM)
            code = await asyncio.to_thread(stack.wait_exit, name, DRAIN_TIMEOUT + 15)
            took = time.monotonic() - started
            if name in CONSUMES:
                at_exit[name] = await offsets(broker.bootstrap, name)
            lines = stack.log(name)
            events = [line["event"] for line in lines]
            assert code == 0, lines[-5:]
            assert took < DRAIN_TIMEOUT, took
            assert events.count("worker_draining") == 1 and "drain_timeout" not in events, events
            assert [line["exit_code"] for line in lines if line["event"] == "worker_stopped"] == [0]
            assert "worker_failed" not in events
            draining, stopped = (
                datetime.fromisoformat(next(line["timestamp"] for line in lines if line["event"] == e))
                for e in ("worker_draining", "worker_stopped")
            )
            restarted = time.monotonic()
            await asyncio.to_thread(stack.start, name)
            figures.append(
                f"{name}: SIGTERM -> exit 0 in {took:.2f}s (worker_draining -> worker_stopped"
                f" {(stopped - draining).total_seconds():.2f}s), listening again {time.monotonic() - restarted:.2f}s"
                f" later; requests on their way at SIGTERM: {dict(sender.during(started))};"
                f" {len(sender.accepted) - accepted} events accepted from then until it listened again"
            )
            await asyncio.sleep(3)  # the restarted worker under load before the next one stops
        sender.stopping.set()
        await sending

        good = sorted(str(e["uuid"]) for e in sender.accepted if e["distinct_id"] != "undefined")
        junk = sorted(str(e["uuid"]) for e in sender.accepted if e["distinct_id"] == "undefined")
        conn = await asyncpg.connect(dsn)
        try:

            async def settled() -> bool:
                indexed = await conn.fetchval("SELECT count(*) FROM dead_letters")
                return indexed == len(junk) and await stack.count() == len(good)

            assert await wait_until(settled, timeout=60, interval=0.5)
            assert await stack.stored_uuids() == good
            rows = await stack.sql("SELECT count() AS n, uniqExact(uuid) AS u FROM events")
            assert (int(rows[0]["n"]), int(rows[0]["u"])) == (len(good), len(good))  # not inserted twice
            parked = await conn.fetch("SELECT uuid, reason, attempts FROM dead_letters ORDER BY uuid")
            assert [r["uuid"] for r in parked] == junk
            assert {(r["reason"], r["attempts"]) for r in parked} == {("junk_distinct_id", 1)}
            assert await conn.fetchval("SELECT count(*) FROM persons") == USERS
            assert await conn.fetchval("SELECT count(*) FROM person_distinct_ids") == USERS
        finally:
            await conn.close()
        assert await stack.count("persons") == USERS

        # every message each stage consumed is committed, and each was processed once: persons wrote one
        # event or one dead letter per events_raw message, and each restarted consumer began where its
        # predecessor had committed (its own count is what was left after that)
        topics = {t: await read_all(broker.bootstrap, t) for ts in CONSUMES.values() for t in ts}
        topics["events_raw"] = await read_all(broker.bootstrap, "events_raw")
        assert sorted(orjson.loads(v)["uuid"] for v in topics["events_raw"]) == sorted(good + junk)
        assert sorted(orjson.loads(v)["uuid"] for v in topics["events"]) == good
        assert sorted(orjson.loads(v)["uuid"] for v in topics["dead_letter"]) == junk
        for stage, names in CONSUMES.items():
            total = sum(len(topics[t]) for t in names)
            assert await offsets(broker.bootstrap, stage) == total, stage
            samples = await metrics(stack.url(f"{stage.upper()}_METRICS_PORT", "/metrics"))
            assert sum(consumed(samples, stage).values()) == total - at_exit[stage], stage
            figures.append(f"{stage}: {total} messages, {at_exit[stage]} committed by the first process")

        print("\n" + "\n".join(figures))
        print(f"sent {sender._n} events in {sum(sender.statuses.values())} requests {dict(sender.statuses)};"
              f" accepted {len(good)} + {len(junk)} junk; stored {len(good)}, parked {len(junk)}")  # fmt: skip

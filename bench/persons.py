"""Throughput of the persons worker over a backlog, warm cache and all-new persons, with a profile.

    .venv/bin/python bench/persons.py [--warm-events N] [--warm-persons P] [--new-events M] [--profile]

For each scenario: a Tansu broker and a Postgres database of its own; the events are produced to
`events_raw` first, then `python -m workers persons` runs over the backlog. The rate is measured from
the worker's /metrics (`ua_consumer_messages_total`), from the first processed batch to the last, so
start-up and the group join are excluded. Beside it, the ceiling: a raw aiokafka consumer + producer
pass-through (read events_raw, write the same bytes to another topic) over the same backlog, in the same
run. Postgres statements per event come from `ua_persons_postgres_statements_total`. With --profile,
py-spy samples the worker during the warm run and the top functions (own time) are printed.
Figures go to stdout and var/bench/persons.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp
import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.components import Tansu, create_database, drop_database, free_port, wait_for_port
from workers.kafka import EVENTS_RAW, ensure_topics
from workers.migrate import migrate_postgres
from workers.projects import ensure_project
from workers.settings import Settings

CHROME = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


def events(n: int, persons: int, project_id: int, token: str, seed: int) -> list[tuple[bytes, bytes]]:
    """posthog-js-like events: pageviews with $set_once on some, a $set now and then; (key, value)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        who = f"user-{rng.randrange(persons)}" if persons else f"new-{i}"
        properties: dict[str, Any] = {
            "$current_url": f"https://app.example.com/p/{rng.randrange(50)}",
            "$raw_user_agent": CHROME,
            "$session_id": f"s-{rng.randrange(10**6)}",
            "$set_once": {"$initial_referrer": "$direct"},
        }
        if rng.random() < 0.02:
            properties["$set"] = {"plan": rng.choice(["free", "pro", "team"])}
        event = {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event": "$pageview",
            "distinct_id": who,
            "project_id": project_id,
            "token": token,
            "timestamp": "2026-11-01T10:00:00.000000Z",
            "received_at": "2026-11-01T10:00:00.100000Z",
            "sent_at": None,
            "ip": "81.2.69.160",
            "properties": properties,
            "set": None,
            "set_once": None,
            "user_properties": None,
            "protocol": "posthog",
            "lib": "web",
        }
        out.append((f"{token}:{who}".encode(), orjson.dumps(event)))
    return out


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        for start in range(0, len(records), 5000):
            futures = [await producer.send(topic, v, key=k) for k, v in records[start : start + 5000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def ceiling(bootstrap: str, total: int) -> float:
    """Raw aiokafka pass-through of the same backlog: events_raw -> bench_passthrough."""
    consumer = AIOKafkaConsumer(EVENTS_RAW, bootstrap_servers=bootstrap, group_id="bench-ceiling",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=4 << 20, fetch_max_bytes=32 << 20)  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await consumer.start()
    await producer.start()
    done, started = 0, None
    try:
        while done < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            started = started or time.perf_counter()
            futures = [await producer.send("bench_passthrough", r.value, key=r.key) for r in records]
            await asyncio.gather(*futures)
            await consumer.commit()
            done += len(records)
        return done / (time.perf_counter() - started)  # type: ignore[operator]
    finally:
        await consumer.stop()
        await producer.stop()


async def metrics(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def scenario(name: str, n: int, persons: int, profile: bool, tmp: Path) -> dict[str, Any]:
    tansu = Tansu().start()
    dsn = await create_database()
    worker = None
    try:
        await migrate_postgres(dsn)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        project = await ensure_project(pool, "bench", api_token=f"tok-{uuid.uuid4().hex[:8]}")
        await pool.close()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap, "KAFKA_TOPIC_PARTITIONS": "4",
               "POSTGRES_DSN": dsn, "PERSONS_METRICS_PORT": str(free_port()), "LOG_LEVEL": "warning"}  # fmt: skip
        settings = Settings.from_env(env)
        await ensure_topics(settings)
        await ensure_topics(settings, ["bench_passthrough"])
        records = events(n, persons, project.id, project.api_token, seed=n + persons)
        await produce(tansu.bootstrap, EVENTS_RAW, records)
        ceiling_rate = await ceiling(tansu.bootstrap, n)

        port = int(env["PERSONS_METRICS_PORT"])
        log = open(tmp / f"{name}-worker.log", "wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers", "persons"], env=env, stdout=log, stderr=log
        )
        spy = None
        wait_for_port(port, timeout=60)
        key = 'ua_consumer_messages_total{outcome="ok",stage="persons"}'
        first = None
        while True:
            sample = await metrics(port)
            done = sample.get(key, 0)
            if done and first is None:
                first = (time.perf_counter(), done)
                if profile:
                    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(worker.pid), "--format", "raw",
                                            "--output", str(tmp / f"{name}.folded"), "--rate", "200"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            if done >= n:
                break
            await asyncio.sleep(0.25)
        elapsed = time.perf_counter() - first[0]  # type: ignore[index]
        rate = (n - first[1]) / elapsed  # type: ignore[index]
        statements = sample.get("ua_persons_postgres_statements_total", 0)
        rss = peak_rss_mb(worker.pid)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        worker.terminate()
        worker.wait(60)
        return {
            "scenario": name,
            "events": n,
            "persons": persons or n,
            "events_per_second": round(rate),
            "ceiling_events_per_second": round(ceiling_rate),
            "ratio": round(rate / ceiling_rate, 2),
            "postgres_statements_per_event": round(statements / n, 4),
            "peak_rss_mb": round(rss, 1),
            "profile": top_functions(tmp / f"{name}.folded") if profile else None,
        }
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        await drop_database(dsn)
        tansu.stop()


def top_functions(folded: Path, limit: int = 15) -> list[tuple[str, float]]:
    """Own time per function from py-spy's folded stacks (the leaf of each sample)."""
    if not folded.exists():
        return []
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        own[leaf] += int(count)
        total += int(count)
    return [(f, round(100 * c / total, 1)) for f, c in own.most_common(limit)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warm-events", type=int, default=1_000_000)
    parser.add_argument("--warm-persons", type=int, default=10_000)
    parser.add_argument("--new-events", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)

    async def run() -> list[dict[str, Any]]:
        return [
            await scenario("warm", args.warm_events, args.warm_persons, args.profile, out),
            await scenario("all_new", args.new_events, 0, False, out),
        ]

    results = asyncio.run(run())
    (out / "persons.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    for r in results:
        print(
            f"{r['scenario']:8} {r['events']:>9} events {r['persons']:>9} persons  "
            f"{r['events_per_second']:>7}/s  ceiling {r['ceiling_events_per_second']:>7}/s  "
            f"ratio {r['ratio']}  pg statements/event {r['postgres_statements_per_event']}  "
            f"peak RSS {r['peak_rss_mb']} MB"
        )
        for function, share in r["profile"] or []:
            print(f"    {share:5.1f}%  {function}")


if __name__ == "__main__":
    main()

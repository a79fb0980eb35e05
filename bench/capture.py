"""Throughput of capture, persons and writer on real components, each beside its ceiling.

    .venv/bin/python bench/capture.py [--events N] [--connections C]     (make bench)

Starts its own Tansu broker, Postgres database (dropped at the end) and chDB directories, then, in order:

1. Kafka ceiling: a raw aiokafka producer (start_producer's settings) sends the exact records capture would
   produce (same bytes, same key) in 100-record batches from C concurrent tasks, waiting for every ack.
2. capture (`python -m workers capture`): C aiohttp connections POST PostHog `/batch/` requests of 100
   events; a request counts once answered 200 (all its events acknowledged by Kafka).
3. persons (`python -m workers persons`): events_raw -> events; done when `events` holds every event.
4. writer (`python -m workers writer`, chDB): events -> ClickHouse; done when count() (read through the
   writer's /api/sql) reaches the total.
5. chDB ceiling: the same rows, in the writer's batch size, inserted by a raw chDB session (Arrow stream)
   into the same schema in another directory.

Consumers are timed from their `partitions_assigned` log line (start-up and group join are excluded), so
persons and writer figures are throughput over a backlog. Peak RSS is VmHWM read before each worker stops.
The figures go to stdout and to var/bench/capture.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `tests.components` (Tansu, Postgres helpers) lives beside `workers`

import aiohttp
import asyncpg
import orjson
import pyarrow as pa
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from chdb.session import Session

from tests.components import Tansu, create_database, drop_database, free_port, wait_for_port
from workers.capture import iso, posthog
from workers.kafka import EVENTS, EVENTS_RAW, ensure_topics
from workers.migrate import SQL_DIR, migrate_postgres
from workers.projects import ensure_project
from workers.sanitize import Limits
from workers.settings import Settings
from workers.writer import EVENT_COLUMNS, event_row

TOKEN, API_KEY = "bench-token", "bench-api-key"
CEILING_TOPIC = "bench_ceiling"
PAGES = ["/", "/pricing", "/docs/getting-started", "/app/dashboard", "/app/insights/trends", "/signup"]
EVENT_NAMES = ["$pageview"] * 5 + ["$autocapture"] * 3 + ["signed_up", "plan_upgraded"]


# ---- payloads ----


def posthog_batch(rng: random.Random, size: int, users: int) -> bytes:
    """One posthog-js-like `/batch/` body: `size` events, ~500 bytes of properties each, fresh uuids."""
    now = datetime.now(UTC)
    events = []
    for _ in range(size):
        user, page = rng.randrange(users), rng.choice(PAGES)
        moment = now - timedelta(milliseconds=rng.randrange(60_000))
        session = uuid.UUID(int=rng.getrandbits(128), version=4)
        properties = {
            "$os": "Mac OS X", "$os_version": "14.4.1", "$browser": "Chrome", "$browser_version": 124,
            "$device_type": "Desktop", "$current_url": f"https://app.example.com{page}?utm_source=bench",
            "$host": "app.example.com", "$pathname": page, "$screen_height": 1117, "$screen_width": 1728,
            "$viewport_height": 988, "$viewport_width": 1728, "$lib": "web", "$lib_version": "1.130.0",
            "$insert_id": f"{rng.getrandbits(64):016x}", "$device_id": f"dev-{user:06d}",
            "$session_id": str(session), "$window_id": str(session)[::-1], "$referrer": "$direct",
            "$referring_domain": "$direct", "plan": rng.choice(["free", "pro", "team"]), "token": TOKEN,
        }  # fmt: skip
        events.append(
            {
                "event": rng.choice(EVENT_NAMES),
                "distinct_id": f"user-{user:06d}",
                "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "timestamp": iso(moment),
                "properties": properties,
            }
        )
    return orjson.dumps({"api_key": TOKEN, "batch": events, "sent_at": iso(now)})


def kafka_records(body: bytes, project_id: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) records capture produces for this body (its own normalization and serialization)."""
    env = posthog.envelope(orjson.loads(body))
    events = posthog.normalize(env, project_id, TOKEN, datetime.now(UTC), "127.0.0.1")
    return [(f"{e['token']}:{e['distinct_id']}".encode(), orjson.dumps(e)) for e in events]


# ---- measuring ----


async def drive(send: Any, jobs: list[Any], connections: int) -> dict[str, float]:
    """`send(job)` for every job from `connections` concurrent loops: elapsed time and call latencies."""
    pending, latencies = iter(jobs), []

    async def loop() -> None:
        for job in pending:
            started = time.perf_counter()
            await send(job)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "seconds": elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


async def kafka_ceiling(settings: Settings, batches: list[list[tuple[bytes, bytes]]], connections: int):  # type: ignore[no-untyped-def]
    producer = AIOKafkaProducer(  # workers.kafka.start_producer's settings
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=settings.capture_max_event_bytes + 64 * 1024,
        request_timeout_ms=int(settings.kafka_produce_timeout_seconds * 1000),
    )
    await producer.start()

    async def send(records: list[tuple[bytes, bytes]]) -> None:  # as Producer.send_all
        await asyncio.gather(*[await producer.send(CEILING_TOPIC, v, key=k) for k, v in records])

    try:
        await drive(send, batches[:10], connections)  # warm-up: connections, metadata
        return await drive(send, batches[10:], connections)
    finally:
        await producer.stop()


async def capture_run(url: str, bodies: list[bytes], connections: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=connections)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as http:

        async def send(body: bytes) -> None:
            async with http.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"capture answered {response.status}: {answer[:300]!r}")

        await drive(send, bodies[:10], connections)  # warm-up: connections, project lookup
        return await drive(send, bodies[10:], connections)


class Worker:
    """`python -m workers <name>` with its log in a file; peak RSS and partition assignment read from outside."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name, self.log = name, logs / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers", name],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def assigned_at(self) -> float | None:
        """Wall time of the first `partitions_assigned` log line (the consumer is ready to fetch)."""
        for line in self.log.read_bytes().splitlines():
            if b'"partitions_assigned"' in line:
                return datetime.fromisoformat(orjson.loads(line)["timestamp"]).timestamp()
        return None

    async def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        return self.process.returncode


async def until(worker: Worker, done: Any, total: int, timeout: float) -> float:
    """Poll `done()` (a count) until it reaches `total`; the seconds since the worker's partition assignment."""
    deadline = time.monotonic() + timeout
    while (count := await done()) < total:
        worker.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{worker.name}: {count} of {total} after {timeout}s\n{worker.tail()}")
        await asyncio.sleep(0.1)
    finished, assigned = time.time(), worker.assigned_at()
    if assigned is None:
        raise RuntimeError(f"{worker.name}: no partitions_assigned in its log")
    return finished - assigned


def consumed(metrics_port: str, stage: str) -> Any:
    """The stage's Ok count from its /metrics (Tansu's end offsets are wrong: count what was consumed)."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    sample = f'ua_consumer_messages_total{{outcome="ok",stage="{stage}"}} '

    async def count() -> int:
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                text = await response.text()
        except aiohttp.ClientError:
            return 0
        line = next((line for line in text.splitlines() if line.startswith(sample)), None)
        return int(float(line.rsplit(" ", 1)[1])) if line else 0

    return count


async def read_topic(consumer: AIOKafkaConsumer, topic: str, total: int) -> list[bytes]:
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    values: list[bytes] = []
    while len(values) < total:
        for records in (await consumer.getmany(timeout_ms=1000, max_records=50_000)).values():
            values.extend(r.value for r in records)
    return values


def chdb_ceiling(path: Path, rows: list[tuple[Any, ...]], batch_size: int) -> dict[str, float]:
    """Raw chDB: the writer's rows, batch by batch, Arrow-encoded and streamed into `events`."""
    session = Session(str(path))
    try:
        session.query("SET session_timezone = 'UTC'", "Null")
        for sql_file in sorted((SQL_DIR / "clickhouse").glob("*.sql")):
            for statement in sql_file.read_text().split(";\n"):
                if statement.strip().rstrip(";").strip():
                    session.query(statement.strip().rstrip(";"), "Null")
        insert = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})"
        encode = engine = 0.0
        for start in range(0, len(rows), batch_size):
            began = time.perf_counter()
            columns = zip(*rows[start : start + batch_size], strict=True)
            table = pa.Table.from_arrays([pa.array(c) for c in columns], names=list(EVENT_COLUMNS))
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as stream:
                stream.write_table(table)
            data = sink.getvalue().to_pybytes()
            encoded = time.perf_counter()
            with session.send_insert(insert, "ArrowStream") as inserter:
                inserter.append(data)
                inserter.finish()
            encode, engine = encode + encoded - began, engine + time.perf_counter() - encoded
        count = int(session.query("SELECT count() FROM events", "CSV").bytes())
        if count != len(rows):
            raise RuntimeError(f"chDB ceiling: {count} rows in the table, {len(rows)} inserted")
    finally:
        session.close()
    return {"seconds": encode + engine, "engine_seconds": engine}


# ---- the run ----


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rng = random.Random(42)
    requests = args.events // args.batch
    users = max(1, args.events // 10)
    bodies = [posthog_batch(rng, args.batch, users) for _ in range(requests + 10)]  # 10 for warm-up
    broker = Tansu().start()
    dsn = await create_database()
    workers: list[Worker] = []
    try:
        project_id = await create_project(dsn)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "KAFKA_TOPIC_PARTITIONS": str(args.partitions),
            "POSTGRES_DSN": dsn,
            "CLICKHOUSE_URL": f"chdb://{tmp}/writer-chdb",
            "CAPTURE_PORT": str(free_port()),
            "QUERY_PORT": str(free_port()),
            "DEV_API_KEY": API_KEY,
            "LOG_LEVEL": "info",
            **{f"{w}_METRICS_PORT": str(free_port()) for w in ("CAPTURE", "PERSONS", "WRITER", "QUERY")},
        }
        settings = Settings.from_env(env)
        await ensure_topics(settings, [EVENTS_RAW, EVENTS, CEILING_TOPIC])
        figures: dict[str, Any] = {}

        records = [kafka_records(b, project_id) for b in bodies]
        figures["kafka_ceiling"] = await kafka_ceiling(settings, records, args.connections)
        event_bytes = sum(len(v) for batch in records for _, v in batch) / (len(records) * args.batch)
        del records

        capture = Worker("capture", env, tmp)
        workers.append(capture)
        await asyncio.to_thread(wait_for_port, int(env["CAPTURE_PORT"]), 60)
        url = f"http://127.0.0.1:{env['CAPTURE_PORT']}/batch/"
        figures["capture"] = await capture_run(url, bodies, args.connections)
        figures["capture"]["peak_rss_mb"] = capture.peak_rss_mb()
        figures["capture"]["exit_code"] = await capture.stop()

        sizes = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await sizes.start()
        try:
            total = len(bodies) * args.batch  # every one acknowledged (warm-up included)
            persons = Worker("persons", env, tmp)
            workers.append(persons)
            seconds = await until(
                persons, consumed(env["PERSONS_METRICS_PORT"], "persons"), total, args.timeout
            )
            figures["persons"] = {"seconds": seconds, "peak_rss_mb": persons.peak_rss_mb()}
            figures["persons"]["exit_code"] = await persons.stop()

            writer = Worker("writer", env, tmp)
            workers.append(writer)
            await asyncio.to_thread(wait_for_port, int(env["QUERY_PORT"]), 60)
            count = table_count(f"http://127.0.0.1:{env['QUERY_PORT']}/api/sql")
            seconds = await until(writer, count, total, args.timeout)
            figures["writer"] = {"seconds": seconds, "peak_rss_mb": writer.peak_rss_mb()}
            figures["writer"]["exit_code"] = await writer.stop()

            values = await read_topic(sizes, EVENTS, total)
        finally:
            await sizes.stop()
        limits = Limits.from_settings(Settings.from_env({}))
        rows = [event_row(v, limits) for v in values]
        figures["chdb_ceiling"] = await asyncio.to_thread(
            chdb_ceiling, tmp / "ceiling-chdb", rows, settings.writer_batch_max_rows
        )
        return summarize(args, figures, total, event_bytes, settings.writer_batch_max_rows)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
        broker.stop()
        await drop_database(dsn)


async def create_project(dsn: str) -> int:
    await migrate_postgres(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        return (await ensure_project(conn, "bench", TOKEN, API_KEY)).id
    finally:
        await conn.close()


def table_count(url: str) -> Any:
    async def count() -> int:
        async with aiohttp.ClientSession() as http:
            query = {"query": "SELECT count() AS n FROM events"}
            async with http.post(url, json=query, headers={"Authorization": f"Bearer {API_KEY}"}) as response:
                body = await response.json()
        return int(body["rows"][0]["n"]) if response.status == 200 else 0

    return count


def summarize(
    args: argparse.Namespace, f: dict[str, Any], total: int, event_bytes: float, batch_rows: int
) -> dict[str, Any]:
    measured = args.events - args.events % args.batch  # warm-up requests are not timed
    rate = {
        "capture": measured / f["capture"]["seconds"],
        "kafka_ceiling": measured / f["kafka_ceiling"]["seconds"],
        "persons": total / f["persons"]["seconds"],
        "writer": total / f["writer"]["seconds"],
        "chdb_ceiling": total / f["chdb_ceiling"]["seconds"],
        "chdb_engine_only": total / f["chdb_ceiling"]["engine_seconds"],
    }
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "events": measured,
            "consumed_events": total,
            "events_per_request": args.batch,
            "connections": args.connections,
            "partitions": args.partitions,
            "cpus": os.cpu_count(),
            "event_bytes": round(event_bytes),
            "writer_batch_rows": batch_rows,
        },
        "rates": {k: round(v) for k, v in rate.items()},
        "ratios": {
            "capture_vs_kafka": round(rate["capture"] / rate["kafka_ceiling"], 3),
            "writer_vs_chdb": round(rate["writer"] / rate["chdb_ceiling"], 3),
        },
        "targets": {"capture_vs_kafka": 0.6, "writer_vs_chdb": 0.5},
        "latency_ms": {
            k: {p: round(f[k][p], 1) for p in ("p50_ms", "p99_ms")} for k in ("capture", "kafka_ceiling")
        },
        "peak_rss_mb": {w: round(f[w]["peak_rss_mb"], 1) for w in ("capture", "persons", "writer")},
        "exit_codes": {w: f[w]["exit_code"] for w in ("capture", "persons", "writer")},
        "seconds": {k: round(v["seconds"], 2) for k, v in f.items()},
    }


def table(r: dict[str, Any]) -> str:
    c, rates, ratios, rss, lat = r["config"], r["rates"], r["ratios"], r["peak_rss_mb"], r["latency_ms"]

    def ok(name: str) -> str:
        return "ok" if ratios[name] >= r["targets"][name] else "BELOW"

    rows = [
        ("capture", f"{rates['capture']:,} ev/s", f"{rates['kafka_ceiling']:,} ev/s (aiokafka)",
         f"{ratios['capture_vs_kafka']:.2f} (>= 0.6 {ok('capture_vs_kafka')})", f"{rss['capture']:.0f} MB"),
        ("persons", f"{rates['persons']:,} ev/s", "-", "-", f"{rss['persons']:.0f} MB"),
        ("writer", f"{rates['writer']:,} rows/s", f"{rates['chdb_ceiling']:,} rows/s (chDB)",
         f"{ratios['writer_vs_chdb']:.2f} (>= 0.5 {ok('writer_vs_chdb')})", f"{rss['writer']:.0f} MB"),
    ]  # fmt: skip
    head = ("stage", "measured", "ceiling", "ratio (target)", "peak RSS")
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)) for line in [head, *rows]]
    return "\n".join(
        [
            f"bench/capture.py: {c['events']:,} events ({c['event_bytes']} B each on Kafka), "
            f"{c['events_per_request']}/request, {c['connections']} connections, "
            f"{c['partitions']} partitions, {c['cpus']} CPUs",
            "",
            lines[0],
            "-" * len(lines[0]),
            *lines[1:],
            "",
            f"request latency p50/p99: capture {lat['capture']['p50_ms']}/{lat['capture']['p99_ms']} ms, "
            f"aiokafka 100-record batch {lat['kafka_ceiling']['p50_ms']}/{lat['kafka_ceiling']['p99_ms']} ms",
            f"chDB engine only (Arrow pre-encoded): {rates['chdb_engine_only']:,} rows/s; "
            f"writer batch {c['writer_batch_rows']:,} rows; persons and writer over {c['consumed_events']:,} events",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "100000")))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "8")))
    parser.add_argument("--batch", type=int, default=100, help="events per /batch/ request")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=180, help="seconds a consumer stage may take")
    parser.add_argument("--output", type=Path, default=ROOT / "var" / "bench" / "capture.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        result = uvloop.run(run(args, Path(tmp)))
    print(table(result))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()

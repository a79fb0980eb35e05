"""The local broker's memory (issue 10): what Tansu 0.6 honours to free it, and its RSS over a long run.

    .venv/bin/python bench/broker_memory.py probe [--messages N] [--wait SECONDS]
    .venv/bin/python bench/broker_memory.py run [--events N] [--connections C] [--batch B] [--compression gzip]

`probe`, on a Tansu of its own: N messages of 1 KB are produced to a topic created with `retention.ms=1000`
and `retention.bytes=100000` and to a plain one, and a consumer group commits all of them. Then:
- retention: the retained topic's earliest readable offset and the broker's RSS, every minute for
  --wait seconds (Tansu runs its storage maintenance every 600 s: wait past it);
- DeleteRecords (aiokafka's `delete_records`) below the committed offset of the plain topic, what a
  trimmer would do below every group's committed offset: its answer, the earliest offset, the RSS;
- DeleteTopics of both: the RSS.

`run`: capture, persons, writer and dlq (`make up` without the Flink job) as subprocesses on a Tansu of
their own; N events (PostHog `/batch/` requests of B events, ~500 bytes of properties each, 10,000 users)
from C connections; Tansu's RSS every 5 s with the messages produced to and consumed from Kafka (the
workers' /metrics); at the end the events stored (`count() FROM events FINAL`) and the RSS at rest.
--compression sets the workers' KAFKA_COMPRESSION.

RSS is VmRSS of the broker's process. The figures go to stdout and to var/bench/broker_memory_<mode>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
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
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete

from tests.components import Tansu, create_database, drop_database
from tests.faults.stack import TOKEN, Stack

OUT = ROOT / "var" / "bench"
PAGES = ["/", "/pricing", "/docs/getting-started", "/app/dashboard", "/app/insights/trends", "/signup"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# ---- probe ----


async def produce(bootstrap: str, topic: str, n: int, size: int = 1000) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        value, pending = b"x" * size, []
        for i in range(n):
            pending.append(await producer.send(topic, value, key=str(i).encode(), partition=0))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def consume_and_commit(bootstrap: str, group: str, topics: list[str], n: int) -> None:
    """A group reads every message of partition 0 of each topic and commits after the last."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        for topic in topics:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            seen = 0
            while seen < n:
                seen += len((await consumer.getmany(tp, timeout_ms=2000, max_records=10_000)).get(tp, []))
            await consumer.commit({tp: n})
    finally:
        await consumer.stop()


async def earliest(bootstrap: str, topic: str) -> int | None:
    """The offset of the first message a fetch from offset 0 returns (None: nothing)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        records = (await consumer.getmany(tp, timeout_ms=3000, max_records=1)).get(tp, [])
        return records[0].offset if records else None
    finally:
        await consumer.stop()


async def probe(args: argparse.Namespace) -> dict[str, Any]:
    broker = Tansu().start()
    assert broker.process is not None
    pid, bootstrap = broker.process.pid, broker.bootstrap
    result: dict[str, Any] = {"messages": args.messages, "rss_start_mb": rss_mb(pid)}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        retained = {"retention.ms": "1000", "retention.bytes": "100000", "segment.ms": "1000",
                    "segment.bytes": "100000", "cleanup.policy": "delete"}  # fmt: skip
        await admin.create_topics(
            [NewTopic("retained", 1, 1, topic_configs=retained), NewTopic("plain", 1, 1)]
        )
        started = time.monotonic()
        await produce(bootstrap, "retained", args.messages)
        await produce(bootstrap, "plain", args.messages)
        await consume_and_commit(bootstrap, "probe", ["retained", "plain"], args.messages)
        result["rss_after_produce_mb"] = rss_mb(pid)
        print(
            f"{args.messages} x 1 KB to each of 2 topics, committed: RSS {result['rss_after_produce_mb']:.0f} MB"
        )

        samples = []
        while True:
            elapsed = time.monotonic() - started
            samples.append({"seconds": round(elapsed), "rss_mb": rss_mb(pid),
                            "retained_earliest": await earliest(bootstrap, "retained")})  # fmt: skip
            print(f"  retention: {samples[-1]}", flush=True)
            if elapsed >= args.wait:
                break
            await produce(bootstrap, "retained", 10)  # a little traffic, in case Tansu trims on produce
            await asyncio.sleep(min(60, max(1, args.wait - elapsed)))
        result["retention"] = samples

        before = rss_mb(pid)
        try:
            answer: Any = await admin.delete_records(
                {TopicPartition("plain", 0): RecordsToDelete(args.messages)}
            )
            answer = {str(tp): low for tp, low in answer.items()}
        except Exception as exc:  # Tansu 0.6 panics ("not yet implemented") and closes the connection
            answer = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(2)
        result["delete_records"] = {"answer": answer, "rss_before_mb": before, "rss_after_mb": rss_mb(pid),
                                    "plain_earliest": await earliest(bootstrap, "plain")}  # fmt: skip
        print(f"  delete_records: {result['delete_records']}")

        await admin.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)  # a fresh connection after the panic
        await admin.start()
        before = rss_mb(pid)
        await admin.delete_topics(["retained", "plain"])
        await asyncio.sleep(2)
        result["delete_topics"] = {"rss_before_mb": before, "rss_after_mb": rss_mb(pid)}
        print(f"  delete_topics: {result['delete_topics']}")
    finally:
        await admin.close()
        broker.stop()
    return result


# ---- run ----


def batch(rng: random.Random, size: int, users: int) -> list[dict[str, Any]]:
    """posthog-js-like events, ~500 bytes of properties each, fresh uuids."""
    now = datetime.now(UTC)
    events = []
    for _ in range(size):
        user, page = rng.randrange(users), rng.choice(PAGES)
        session = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        properties = {
            "$os": "Mac OS X", "$os_version": "14.4.1", "$browser": "Chrome", "$browser_version": 124,
            "$device_type": "Desktop", "$current_url": f"https://app.example.com{page}?utm_source=bench",
            "$host": "app.example.com", "$pathname": page, "$screen_height": 1117, "$screen_width": 1728,
            "$lib": "web", "$lib_version": "1.130.0", "$device_id": f"dev-{user:06d}", "$session_id": session,
            "$referrer": "$direct", "plan": rng.choice(["free", "pro", "team"]),
        }  # fmt: skip
        moment = now - timedelta(milliseconds=rng.randrange(60_000))
        events.append({"event": "$pageview", "distinct_id": f"user-{user:06d}",
                       "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                       "timestamp": moment.isoformat().replace("+00:00", "Z"), "properties": properties})  # fmt: skip
    return events


async def counters(stack: Stack) -> dict[str, float]:
    """Messages produced to Kafka (every worker) and consumed ok by persons and writer, from /metrics."""
    totals = {"produced": 0.0, "consumed_persons": 0.0, "consumed_writer": 0.0}
    async with aiohttp.ClientSession() as http:
        for name in stack.workers:
            try:
                async with http.get(stack.url(f"{name.upper()}_METRICS_PORT", "/metrics")) as response:
                    text = await response.text()
            except aiohttp.ClientError:
                continue
            for line in text.splitlines():
                if line.startswith("ua_kafka_produced_messages_total{"):
                    totals["produced"] += float(line.rsplit(" ", 1)[1])
                elif line.startswith("ua_consumer_messages_total{") and 'outcome="ok"' in line:
                    stage = "persons" if 'stage="persons"' in line else "writer"
                    totals[f"consumed_{stage}"] += float(line.rsplit(" ", 1)[1])
    return totals


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    broker = Tansu().start()
    assert broker.process is not None
    pid = broker.process.pid
    dsn = await create_database()
    samples: list[dict[str, Any]] = []
    try:
        workers = ["capture", "persons", "writer", "dlq"]
        with Stack(tmp, broker.bootstrap, dsn, workers, kafka_compression=args.compression) as stack:
            started = time.monotonic()
            sent = 0

            async def sample(phase: str) -> None:
                counts = await counters(stack)
                samples.append({"seconds": round(time.monotonic() - started, 1), "phase": phase,
                                "rss_mb": round(rss_mb(pid), 1), "sent": sent, **counts})  # fmt: skip
                if len(samples) % 12 == 1:
                    print(f"  {samples[-1]}", flush=True)

            async def sampler() -> None:
                while True:
                    await sample("sending")
                    await asyncio.sleep(5)

            rng = random.Random(7)
            requests = (args.events + args.batch - 1) // args.batch
            url = stack.url("CAPTURE_PORT", "/batch/")
            pending = iter(range(requests))

            async def send(http: aiohttp.ClientSession) -> None:
                nonlocal sent
                for i in pending:
                    size = min(args.batch, args.events - i * args.batch)
                    body = orjson.dumps({"api_key": TOKEN, "batch": batch(rng, size, 10_000)})
                    while True:
                        async with http.post(
                            url, data=body, headers={"Content-Type": "application/json"}
                        ) as r:
                            if r.status == 200:
                                break
                        await asyncio.sleep(0.5)  # 503: the broker is busy; the SDKs retry too
                    sent += size

            task = asyncio.create_task(sampler())
            try:
                async with aiohttp.ClientSession() as http:
                    await asyncio.gather(*(send(http) for _ in range(args.connections)))
                sent_seconds = time.monotonic() - started
                print(f"sent {sent} events in {sent_seconds:.0f} s", flush=True)
                while int((await stack.sql("SELECT count() AS n FROM events"))[0]["n"]) < sent:
                    await asyncio.sleep(5)
            finally:
                task.cancel()
            drained_seconds = time.monotonic() - started
            stored = await stack.count("events")
            for _ in range(args.rest // 5):
                await sample("at rest")
                await asyncio.sleep(5)
    finally:
        broker.stop()
        await drop_database(dsn)
    rss = [s["rss_mb"] for s in samples]
    return {"events": args.events, "compression": args.compression, "sent": sent, "stored": stored, "send_seconds": round(sent_seconds, 1),
            "drain_seconds": round(drained_seconds, 1), "rss_start_mb": rss[0], "rss_max_mb": max(rss),
            "rss_end_mb": rss[-1], "mb_per_1k_events": round((rss[-1] - rss[0]) / (sent / 1000), 3),
            "samples": samples}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    p = modes.add_parser("probe")
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--wait", type=float, default=660, help="seconds to watch the retained topic")
    r = modes.add_parser("run")
    r.add_argument("--events", type=int, default=2_000_000)
    r.add_argument("--connections", type=int, default=4)
    r.add_argument("--batch", type=int, default=500)
    r.add_argument("--rest", type=int, default=30, help="seconds of samples after the writer caught up")
    r.add_argument("--compression", default="none", help="the workers' KAFKA_COMPRESSION (none, gzip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ua-broker-memory-") as tmp:
        result = asyncio.run(probe(args) if args.mode == "probe" else run(args, Path(tmp)))
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = f"_{args.compression}" if args.mode == "run" and args.compression != "none" else ""
    path = OUT / f"broker_memory_{args.mode}{suffix}.json"
    path.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    summary = {k: v for k, v in result.items() if k not in ("samples", "retention")}
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    print(f"-> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""What capture's rate limits cost: throughput with limits off and on in the same run, and one check's time.

    .venv/bin/python bench/limits.py [--events N] [--connections C] [--rounds R]     (make bench)

A Tansu broker and a Postgres database of its own (dropped at the end), the Redis on 127.0.0.1:6379 (keys
under a prefix of this run's own, left to expire). Then, R times in turn, `python -m workers capture` with
CAPTURE_RATE_LIMITS=false and with it true (Redis buckets, limits high enough that nothing is refused or
sent to overflow, so only the check's cost differs), each fed the same PostHog `/batch/` requests of 100
events from C aiohttp connections (bench/capture.py's bodies: ~100 distinct ids a request). Throughput
is the measured events over the seconds of all rounds of a mode; the ratio is on / off, also per round.

The check alone: `Limiter.take` called in this process for one request, one at a time, against Redis
(the Lua script: 1 round trip) and against the per-process buckets (the fallback), for a request of 100
events with 100 distinct ids (201 keys) and with 1 (3 keys): p50 and p99 of 2,000 calls each.
The figures go to stdout and to var/bench/limits.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson
import redis.asyncio
import uvloop

from bench.capture import TOKEN, Worker, capture_run, create_project, posthog_batch
from tests.components import REDIS_URL, Tansu, create_database, drop_database, free_port, wait_for_port
from workers.capture.limits import Bucket, Limiter, LocalBuckets, Rates

HIGH = 1_000_000_000  # limits nothing reaches
RATES = Rates(Bucket(HIGH, HIGH), Bucket(HIGH, HIGH), Bucket(HIGH, HIGH))


async def capture_rounds(args: argparse.Namespace, tmp: Path, bodies: list[bytes]) -> dict[str, Any]:
    broker = Tansu().start()
    dsn = await create_database()
    try:
        await create_project(dsn)
        seconds: dict[str, list[float]] = {"off": [], "on": []}
        p99: dict[str, list[float]] = {"off": [], "on": []}
        for round_no in range(args.rounds):
            for mode in ("off", "on"):
                env = {
                    **os.environ,
                    "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                    "KAFKA_TOPIC_PARTITIONS": str(args.partitions),
                    "POSTGRES_DSN": dsn,
                    "CAPTURE_PORT": str(free_port()),
                    "CAPTURE_METRICS_PORT": str(free_port()),
                    "LOG_LEVEL": "warning",
                    "CAPTURE_RATE_LIMITS": "true" if mode == "on" else "false",
                    "CAPTURE_REDIS_URL": REDIS_URL,
                    "CAPTURE_REDIS_PREFIX": f"ua-bench-{uuid.uuid4().hex}:",
                    **{f"CAPTURE_{name}": str(HIGH) for name in ("PROJECT_EVENTS_PER_SECOND", "PROJECT_BURST",
                       "DISTINCT_ID_EVENTS_PER_SECOND", "DISTINCT_ID_BURST", "OVERFLOW_EVENTS_PER_SECOND",
                       "OVERFLOW_BURST")},
                }  # fmt: skip
                worker = Worker("capture", env, tmp)
                try:
                    await asyncio.to_thread(wait_for_port, int(env["CAPTURE_PORT"]), 60)
                    url = f"http://127.0.0.1:{env['CAPTURE_PORT']}/batch/"
                    figures = await capture_run(url, bodies, args.connections)
                finally:
                    await worker.stop()
                seconds[mode].append(figures["seconds"])
                p99[mode].append(figures["p99_ms"])
                print(f"round {round_no + 1} limits {mode}: {figures['seconds']:.2f} s, request p99 "
                      f"{figures['p99_ms']:.1f} ms", file=sys.stderr)  # fmt: skip
        return {"seconds": seconds, "request_p99_ms": p99}
    finally:
        broker.stop()
        await drop_database(dsn)


def percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_us": round(1e6 * samples[len(samples) // 2], 1),
        "p99_us": round(1e6 * samples[int(len(samples) * 0.99)], 1),
    }


async def check_times(calls: int) -> dict[str, dict[str, float]]:
    """One `Limiter.take` at a time: Redis (shared) and the per-process fallback, 100 and 1 distinct ids."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    shared = Limiter(client, f"ua-bench-{uuid.uuid4().hex}:")
    local = LocalBuckets()
    figures = {}
    try:
        for ids in (100, 1):
            counts = [(f"user-{n:06d}", 100 // ids) for n in range(ids)]
            keys = shared.keys(1, [d for d, _ in counts])
            for name, take in (
                ("redis", lambda: shared.take(1, RATES, counts, True)),  # noqa: B023
                ("local", None),
            ):
                samples = []
                for _ in range(calls + 100):  # the first 100: warm-up
                    started = time.perf_counter()
                    if take is None:
                        local.take(keys, RATES, [n for _, n in counts], True)
                    else:
                        await take()
                    samples.append(time.perf_counter() - started)
                figures[f"{name}_{ids}_ids"] = percentiles(samples[100:])
    finally:
        await shared.close()
    return figures


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rng = random.Random(42)
    requests = args.events // 100
    bodies = [posthog_batch(rng, 100, max(1, args.events // 10)) for _ in range(requests + 10)]  # 10 warm-up
    rounds = await capture_rounds(args, tmp, bodies)
    measured = requests * 100
    rate = {mode: measured * args.rounds / sum(s) for mode, s in rounds["seconds"].items()}
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "events_per_round": measured,
            "rounds": args.rounds,
            "connections": args.connections,
            "events_per_request": 100,
            "cpus": os.cpu_count(),
            "token": TOKEN,
        },
        "capture_events_per_second": {mode: round(r) for mode, r in rate.items()},
        "ratio_on_vs_off": round(rate["on"] / rate["off"], 3),
        "ratio_per_round": [round(off / on, 3) for off, on in zip(*rounds["seconds"].values(), strict=True)],
        "request_p99_ms": {m: round(max(v), 1) for m, v in rounds["request_p99_ms"].items()},
        "seconds": {m: [round(s, 2) for s in v] for m, v in rounds["seconds"].items()},
        "limit_check": await check_times(2000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "60000")))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "8")))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--output", type=Path, default=ROOT / "var" / "bench" / "limits.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        result = uvloop.run(run(args, Path(tmp)))
    rates, check = result["capture_events_per_second"], result["limit_check"]
    print(
        f"capture, {result['config']['events_per_round']:,} events x {args.rounds} rounds, {args.connections} "
        f"connections: limits off {rates['off']:,} ev/s, on {rates['on']:,} ev/s, ratio {result['ratio_on_vs_off']}"
        f" (per round: {', '.join(map(str, result['ratio_per_round']))})"
    )
    print(f"request p99: off {result['request_p99_ms']['off']} ms, on {result['request_p99_ms']['on']} ms")
    for name, figures in check.items():
        print(f"one check, {name}: p50 {figures['p50_us']} us, p99 {figures['p99_us']} us")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()

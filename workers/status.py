"""`python -m workers status` (`make status`): one look at the running pipeline.

- processes: `supervisorctl status` (when `make up`'s supervisord runs);
- lag per stage: each consumer group's committed offsets (read from the broker without joining the group)
  against the producers' acknowledged offsets (workers.lag), so a stopped or stuck stage shows too;
- freshness and the last reconciliation: the writer's /metrics;
- the DLQ by stage, reason and state: Postgres `dead_letters`.

Each part says so when its source does not answer, and the others are still shown.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from workers import lag, writer
from workers.dlq.sql import statement as dlq_statement
from workers.kafka import DEAD_LETTER, EVENTS, EVENTS_RAW, group_committed
from workers.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SOURCE_TIMEOUT_SECONDS = 15  # a part whose source takes longer says it does not answer
# consumer group suffix -> the topics it reads (the Flink job's group too: flink/job.py reads `events`)
GROUPS = {"persons": (EVENTS_RAW,), "writer": tuple(writer.TOPICS), "dlq": (DEAD_LETTER,), "flink": (EVENTS,)}


def processes() -> list[str]:
    conf = ROOT / "supervisord.conf"
    supervisorctl = Path(sys.executable).parent / "supervisorctl"
    done = subprocess.run([str(supervisorctl), "-c", str(conf), "status"], capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return lines if lines and "refused" not in done.stdout and "no such file" not in done.stdout else [
        f"supervisord is not running ({(done.stdout or done.stderr).strip()[:200]})"
    ]  # fmt: skip


async def lag_lines(settings: Settings, pool: asyncpg.Pool) -> list[str]:
    ends = await lag.end_offsets(pool, lag.fresh_seconds(settings.heartbeat_seconds))
    lines = [f"  {'group':<8} {'topic':<20} {'lag':>7}  per partition"]
    for suffix, topics in GROUPS.items():
        committed = await group_committed(
            settings, f"{settings.kafka_consumer_group_prefix}-{suffix}", topics
        )
        behind = lag.lag(ends, committed)
        for topic in topics:
            partitions = sorted(p for t, p in committed if t == topic)
            if not partitions:
                continue
            each = [str(behind[(topic, p)]) if (topic, p) in behind else "?" for p in partitions]
            total = sum(behind.get((topic, p), 0) for p in partitions)
            known = any((topic, p) in behind for p in partitions)
            lines.append(f"  {suffix:<8} {topic:<20} {total if known else '?':>7}  {' '.join(each)}")
    lines.append(
        "  (?: no process reported producing there lately: a partition never written, the Flink job's topics)"
    )
    return lines


async def writer_metrics(settings: Settings) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The writer's /metrics: name -> [(labels, value)]."""
    url = f"http://{settings.metrics_host}:{settings.writer_metrics_port}/metrics"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as answer,
    ):
        text = await answer.text()
    metrics: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            metrics.setdefault(sample.name, []).append((sample.labels, sample.value))
    return metrics


def freshness_lines(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> list[str]:
    overall = metrics.get("ua_pipeline_freshness_seconds")
    if not overall or overall[0][1] != overall[0][1]:  # NaN: no heartbeat stored yet
        return ["freshness: no heartbeat stored yet"]
    parts = sorted(
        metrics.get("ua_pipeline_partition_freshness_seconds", []), key=lambda s: int(s[0]["partition"])
    )
    each = ", ".join(f"{labels['partition']}: {value:.1f} s" for labels, value in parts)
    return [f"freshness: {overall[0][1]:.1f} s behind (stalest partition; by partition {each})"]


def reconcile_lines(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> list[str]:
    last = metrics.get("ua_reconcile_last_run_timestamp_seconds", [({}, 0.0)])[0][1]
    if not last:
        return ["last reconciliation: none since the writer started (python -m workers reconcile runs one)"]
    missing = sorted(
        metrics.get("ua_reconcile_missing_events", []), key=lambda s: (s[0]["project_id"], s[0]["hour"])
    )
    when = datetime.fromtimestamp(last, UTC).isoformat(timespec="seconds")
    if not missing:
        return [f"last reconciliation: {when}, no difference"]
    return [f"last reconciliation: {when}, {len(missing)} hours with a difference:"] + [
        f"  project {labels['project_id']} hour {labels['hour']}: {value:.0f} missing"
        for labels, value in missing
    ]


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    return ["  " + "  ".join(f"{c!s:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]  # fmt: skip


async def command(settings: Settings, args: argparse.Namespace) -> int:
    out = ["processes:", *("  " + line for line in processes())]
    try:
        async with asyncio.timeout(SOURCE_TIMEOUT_SECONDS):
            pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=1)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        out.append(f"lag and dead letters: Postgres does not answer ({type(exc).__name__}: {exc})")
    else:
        try:
            out.append("lag (messages produced minus committed, per consumer group):")
            try:
                async with asyncio.timeout(SOURCE_TIMEOUT_SECONDS):
                    out += await lag_lines(settings, pool)
            except Exception as exc:  # the broker down, most likely: say so, show the rest
                out.append(f"  unavailable: {type(exc).__name__}: {exc}")
            out.append("dead letters (Postgres dead_letters):")
            try:
                rows = await pool.fetch(dlq_statement("counts.sql"))
            except (OSError, asyncpg.PostgresError) as exc:
                out.append(f"  unavailable: {type(exc).__name__}: {exc}")
            else:
                dead = sorted((r["stage"], r["reason"], r["state"], r["messages"]) for r in rows)
                out += table(dead, ("stage", "reason", "state", "messages")) if dead else ["  none"]
        finally:
            await pool.close()
    try:
        metrics = await writer_metrics(settings)
    except (aiohttp.ClientError, TimeoutError) as exc:
        out.append(
            f"freshness and reconciliation: the writer's /metrics does not answer ({type(exc).__name__})"
        )
    else:
        out += freshness_lines(metrics) + reconcile_lines(metrics)
    print("\n".join(out))
    return 0

"""Reconciliation (issue 10): did every event capture accepted end up somewhere?

Per project and UTC hour of the event's timestamp:

    missing = accepted - stored - parked - blocked

accepted: capture's counts (`accepted_counts`: each capture process's highest running total, summed);
stored: `count(DISTINCT uuid)` in `events`; parked: the DLQ's events not replayed (Postgres `dead_letters`,
one per uuid); blocked: the events persons dropped by `blocked_events` (Postgres `dropped_events`). Only hours
whose accepted count has not moved for `settle_seconds` are compared: the events of a count that just moved
may still be on their way. A positive difference is events lost; a negative one, events stored that capture
did not count (a resend of an event already accepted: counted twice, stored once).

`python -m workers reconcile [--hours N]` runs it once and prints it, reading ClickHouse through the query
API's /api/sql (the writer's with chDB, whose directory no other process may open); the writer runs it every RECONCILE_INTERVAL_SECONDS and keeps
`ua_reconcile_missing_events` and `ua_reconcile_last_run_timestamp_seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import structlog

from workers import opsql
from workers.metrics import RECONCILE_LAST_RUN, RECONCILE_MISSING
from workers.settings import Settings

log = structlog.get_logger(__name__)

Query = Callable[[str], Awaitable[list[dict[str, Any]]]]
Key = tuple[int, int]  # (project_id, hour as Unix seconds)


@dataclass(frozen=True)
class Hour:
    project_id: int
    hour: datetime
    accepted: int
    stored: int
    parked: int
    blocked: int

    @property
    def missing(self) -> int:
        return self.accepted - self.stored - self.parked - self.blocked


@dataclass(frozen=True)
class Report:
    since: datetime
    hours: list[Hour]  # compared, in (project, hour) order
    unsettled: int  # (project, hour) pairs left out: their accepted count moved within settle_seconds

    @property
    def differences(self) -> list[Hour]:
        return [h for h in self.hours if h.missing]


async def run(query: Query, pool: asyncpg.Pool, hours: int, settle_seconds: float, now: datetime) -> Report:
    """Compare the last `hours` UTC hours (the current one included)."""
    since = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    epoch = int(since.timestamp())  # the only value in the ClickHouse statements: an integer, formatted in
    accepted = await query(opsql.clickhouse("accepted.sql").format(since=epoch))
    stored = _counts(await query(opsql.clickhouse("stored.sql").format(since=epoch)))
    blocked = _counts(
        [
            {**r, "hour": int(r["hour"].timestamp())}
            for r in await pool.fetch(opsql.postgres("dropped_counts.sql"), since)
        ]
    )
    parked: dict[Key, int] = {}
    # an event may be parked before its hour starts (a timestamp up to 23 h ahead): look a day further back
    for row in await pool.fetch(opsql.postgres("parked_events.sql"), since - timedelta(days=1)):
        key = parked_key(row["value"])
        if key is not None and key[1] >= epoch:
            parked[key] = parked.get(key, 0) + 1
    settled_before = now.timestamp() - settle_seconds
    compared: list[Hour] = []
    for row in sorted(accepted, key=lambda r: (r["project_id"], r["hour"])):
        if row["updated_at"] > settled_before:
            continue
        key = (int(row["project_id"]), int(row["hour"]))
        compared.append(Hour(key[0], datetime.fromtimestamp(key[1], UTC), int(row["events"]), stored.get(key, 0),
                             parked.get(key, 0), blocked.get(key, 0)))  # fmt: skip
    return Report(since, compared, len(accepted) - len(compared))


def _counts(rows: Sequence[Mapping[str, Any]]) -> dict[Key, int]:
    return {(int(r["project_id"]), int(r["hour"])): int(r["events"]) for r in rows}


def parked_key(value: bytes) -> Key | None:
    """(project, hour) of a parked event, if its bytes say (a value that is not such an event: None)."""
    try:
        event = orjson.loads(value)
        moment = datetime.fromisoformat(event["timestamp"])
        project_id = event["project_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if type(project_id) is not int or moment.tzinfo is None:
        return None
    return project_id, int(moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0).timestamp())


def report_lines(report: Report) -> list[str]:
    lines = [f"{'project':>7}  {'hour (UTC)':<16}  {'accepted':>8}  {'stored':>8}  {'parked':>6}  {'blocked':>7}"
             f"  {'missing':>7}"]  # fmt: skip
    for h in report.hours:
        lines.append(f"{h.project_id:>7}  {h.hour:%Y-%m-%d %H:%M}  {h.accepted:>8}  {h.stored:>8}  {h.parked:>6}"
                     f"  {h.blocked:>7}  {h.missing:>7}")  # fmt: skip
    missing = sum(h.missing for h in report.differences)
    lines.append(
        f"{len(report.hours)} hours compared since {report.since:%Y-%m-%d %H:%M} UTC, {len(report.differences)}"
        f" with a difference ({missing} missing in all), {report.unsettled} not settled yet"
    )
    return lines


def log_differences(report: Report) -> None:
    for h in report.differences:
        log.warning(
            "reconcile_missing", project_id=h.project_id, hour=h.hour.isoformat(), missing=h.missing,
            accepted=h.accepted, stored=h.stored, parked=h.parked, blocked=h.blocked,
        )  # fmt: skip


async def every(settings: Settings, query: Query, pool: asyncpg.Pool, stopping: asyncio.Event) -> None:
    """The writer's run: every RECONCILE_INTERVAL_SECONDS (0: never), the first one interval after start."""
    interval = settings.reconcile_interval_seconds
    while interval and not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), interval)
            return
        except TimeoutError:
            pass
        try:
            report = await run(query, pool, settings.reconcile_hours, settings.reconcile_settle_seconds,
                               datetime.now(UTC))  # fmt: skip
        except Exception as exc:  # ClickHouse or Postgres away: the next run tries again
            log.warning("reconcile_failed", error=f"{type(exc).__name__}: {exc}")
            continue
        RECONCILE_MISSING.clear()
        for h in report.differences:
            RECONCILE_MISSING.labels(str(h.project_id), h.hour.strftime("%Y-%m-%dT%H:00:00Z")).set(h.missing)
        RECONCILE_LAST_RUN.set(time.time())
        log_differences(report)
        log.info("reconciled", hours=len(report.hours), differences=len(report.differences),
                 unsettled=report.unsettled)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hours", type=int, help="the last N UTC hours, the current one included "
                        "(default RECONCILE_HOURS)")  # fmt: skip
    parser.add_argument("--settle-seconds", type=float, help="compare only hours whose accepted count has not "
                        "moved for this long (default RECONCILE_SETTLE_SECONDS)")  # fmt: skip


def api_query(settings: Settings) -> Query:
    """A read-only statement through the query API's /api/sql with the operator key."""

    async def query(sql: str) -> list[dict[str, Any]]:
        url = f"http://{settings.query_host}:{settings.query_port}/api/sql"
        headers = {"Authorization": f"Bearer {settings.dev_api_key}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json={"query": sql}, headers=headers) as answer,
        ):
            body = await answer.json()
        if answer.status != 200 or body.get("truncated"):
            raise RuntimeError(f"/api/sql answered {answer.status}: {body}")
        return list(body["rows"])

    return query


async def command(settings: Settings, args: argparse.Namespace) -> int:
    """Print the comparison; exit 1 if any hour has a difference."""
    hours = args.hours if args.hours is not None else settings.reconcile_hours
    settle = args.settle_seconds if args.settle_seconds is not None else settings.reconcile_settle_seconds
    if hours < 1:
        raise SystemExit("--hours must be at least 1")
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=1)
    try:
        report = await run(api_query(settings), pool, hours, settle, datetime.now(UTC))
    finally:
        await pool.close()
    log_differences(report)
    print("\n".join(report_lines(report)))
    return 1 if report.differences else 0

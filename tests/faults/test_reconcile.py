"""Reconciliation (issue 10) on the real workers: accepted = stored + parked + blocked for every project and
hour after a run; rows deleted by hand from ClickHouse show up as exactly that project, hour and count, in
`python -m workers reconcile` (its table, its log line, its exit code) and in the writer's own runs."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from tests.components import Tansu, wait_until
from tests.faults.stack import TOKEN, Stack
from tests.faults.test_freshness import metrics

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.clickhouse]

SCHEMA = {"type": "object", "properties": {"amount": {"type": "number"}}}


def event(name: str, at: datetime, **properties: Any) -> dict[str, Any]:
    return {"event": name, "distinct_id": "user-1", "uuid": str(uuid.uuid4()), "timestamp": at.isoformat(),
            "properties": properties}  # fmt: skip


def reconcile(stack: Stack) -> tuple[int, list[list[str]], list[dict[str, Any]]]:
    """Exit code, the table's rows (cells as printed) and the JSON log lines of `python -m workers reconcile`."""
    done = subprocess.run([sys.executable, "-m", "workers", "reconcile", "--hours", "24", "--settle-seconds", "0"],
                          env=stack.env, capture_output=True, text=True, timeout=60)  # fmt: skip
    lines = done.stdout.splitlines()
    logs = [orjson.loads(line) for line in lines if line.startswith("{")]
    table = [line.split() for line in lines if line[:1] == " " and not line.lstrip().startswith("project")]
    return done.returncode, table, logs


def row(project: int, hour: datetime, *counts: int) -> list[str]:
    return [str(project), f"{hour:%Y-%m-%d}", f"{hour:%H:%M}", *map(str, counts)]


async def test_reconcile_finds_exactly_the_rows_deleted(broker: Tansu, dsn: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    h1, h2 = now - timedelta(hours=3), now - timedelta(hours=5)
    pageviews_1 = [event("$pageview", h1 + timedelta(minutes=n)) for n in range(10)]
    spam = [event("spam", h1 + timedelta(minutes=30 + n)) for n in range(2)]  # blocked
    pageviews_2 = [event("$pageview", h2 + timedelta(minutes=n)) for n in range(6)]
    bad_purchase = [event("purchase", h2 + timedelta(minutes=40), amount="x")]  # parked: schema_invalid

    with Stack(tmp_path, broker.bootstrap, dsn, ["capture", "persons", "writer", "dlq"], heartbeat_seconds=0.5,
               persons_config_refresh_seconds=0.5, reconcile_interval_seconds=1,
               reconcile_settle_seconds=0) as stack:  # fmt: skip
        conn = await asyncpg.connect(dsn)
        try:
            project = await conn.fetchval("SELECT id FROM projects WHERE api_token = $1", TOKEN)
            await conn.execute("INSERT INTO blocked_events (project_id, event) VALUES ($1, 'spam')", project)
            await conn.execute(
                "INSERT INTO event_schemas (project_id, event, json_schema) VALUES ($1, 'purchase', $2::jsonb)",
                project, orjson.dumps(SCHEMA).decode(),
            )  # fmt: skip
            await asyncio.sleep(1.5)  # persons reloads its rules every 0.5 s
            assert await stack.send_posthog(pageviews_1 + spam + pageviews_2 + bad_purchase) == 200

            async def settled() -> bool:
                parked = await conn.fetchval("SELECT count(*) FROM dead_letters")
                blocked = await conn.fetchval("SELECT count(*) FROM dropped_events")
                return await stack.count() == 16 and parked == 1 and blocked == 2

            assert await wait_until(settled, timeout=60, interval=0.3)
        finally:
            await conn.close()

        expected = [row(project, h2, 7, 6, 1, 0, 0), row(project, h1, 12, 10, 0, 2, 0)]

        async def reconciled() -> bool:  # capture sends its counts every 0.5 s
            return reconcile(stack)[:2] == (0, expected)

        assert await wait_until(reconciled, timeout=30, interval=0.5), reconcile(stack)
        assert reconcile(stack)[2] == []

        async def writer_ran(missing: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> bool:
            now = datetime.now(UTC).timestamp()
            found = await metrics(stack, "writer")
            ran = now - 2 < found[("ua_reconcile_last_run_timestamp_seconds", ())] <= now
            return (
                ran and {k: v for k, v in found.items() if k[0] == "ua_reconcile_missing_events"} == missing
            )

        assert await wait_until(lambda: writer_ran({}), timeout=30, interval=0.3)

        # three of hour 1's pageviews deleted by hand, with the writer stopped (only one process opens chDB)
        deleted = [e["uuid"] for e in pageviews_1[:3]]
        stack.kill("writer", signal.SIGTERM)
        assert stack.wait_exit("writer") == 0
        delete_events(tmp_path / "chdb", deleted)
        stack.start("writer")
        assert await stack.count() == 13

        code, table, logs = reconcile(stack)
        assert code == 1
        assert table == [row(project, h2, 7, 6, 1, 0, 0), row(project, h1, 12, 7, 0, 2, 3)]
        assert [(line["event"], line["project_id"], line["hour"], line["missing"]) for line in logs] == [
            ("reconcile_missing", project, h1.isoformat(), 3)
        ]
        labels = (("hour", f"{h1:%Y-%m-%dT%H}:00:00Z"), ("project_id", str(project)))
        assert await wait_until(lambda: writer_ran({("ua_reconcile_missing_events", labels): 3.0}), timeout=30,
                                interval=0.3)  # fmt: skip
        assert [
            (line["project_id"], line["hour"], line["missing"])
            for line in stack.log("writer")
            if line["event"] == "reconcile_missing"
        ][:1] == [(project, h1.isoformat(), 3)]


def delete_events(chdb_path: Path, uuids: list[str]) -> None:
    """ALTER TABLE events DELETE, in a process of its own (the writer's must be stopped)."""
    subprocess.run([sys.executable, "-c", DELETE, str(chdb_path), ",".join(uuids)], check=True, capture_output=True,
                   timeout=120)  # fmt: skip


DELETE = """
import sys
import chdb.session
session = chdb.session.Session(sys.argv[1])
uuids = ", ".join(f"'{u}'" for u in sys.argv[2].split(","))
session.query(f"ALTER TABLE events DELETE WHERE uuid IN ({uuids}) SETTINGS mutations_sync = 1")
session.cleanup()
"""

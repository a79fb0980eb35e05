"""The fault harness on the real workers: persons and the writer killed with SIGKILL while events flow,
restarted by hand and by the supervisor; every accepted event is stored once."""

from __future__ import annotations

import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.components import Tansu, wait_until
from tests.faults.stack import Stack

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.clickhouse]


def batch(k: int, start: datetime) -> list[dict[str, Any]]:
    return [
        {"event": "$pageview", "distinct_id": f"user-{n % 7}", "uuid": str(uuid.uuid4()),
         "timestamp": (start + timedelta(seconds=n)).isoformat(), "properties": {"n": n}}
        for n in range(10 * k, 10 * k + 10)
    ]  # fmt: skip


async def test_killed_workers_lose_and_duplicate_nothing(broker: Tansu, dsn: str, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with Stack(tmp_path, broker.bootstrap, dsn) as stack:
        accepted: list[str] = []

        async def send(k: int) -> int:
            events = batch(k, start)
            status = await stack.send_posthog(events)
            accepted.extend(e["uuid"] for e in events if status == 200)
            return status

        async def stored(n: int) -> bool:
            return await stack.count() == n

        assert [await send(k) for k in range(4)] == [200] * 4
        assert await wait_until(lambda: stored(40), timeout=60, interval=0.2)
        stack.kill("persons", signal.SIGKILL)  # after it has consumed: its group and offsets exist
        assert stack.wait_exit("persons") == -signal.SIGKILL
        assert [await send(k) for k in (4, 5)] == [200] * 2  # capture accepts while persons is down
        stack.start("persons")
        assert [await send(k) for k in (6, 7)] == [200] * 2
        stack.autorestart = True
        stack.kill("writer", signal.SIGKILL)  # while batches 6 and 7 may be on their way in
        stack.wait_restarted("writer", 1)
        assert [await send(k) for k in (8, 9)] == [200] * 2

        assert await wait_until(lambda: stored(100), timeout=90, interval=0.5)
        assert await stack.stored_uuids() == sorted(accepted)
        assert stack.wait_exit("writer", 0) == -signal.SIGKILL
        assert stack.restarts == {"capture": 0, "persons": 0, "writer": 1}
        starts = {
            name: [line["event"] for line in stack.log(name)].count("worker_starting")
            for name in stack.workers
        }
        assert starts == {"capture": 1, "persons": 2, "writer": 2}

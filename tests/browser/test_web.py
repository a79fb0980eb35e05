"""The web app in a real browser: the whole stack (capture → persons → writer with the query API, and the
Flink job for sessions) as subprocesses, events seeded through capture, then each file of web/e2e/ run by
Node's test runner, driving Debian's chromium through playwright-core (no browser download). The pages'
numbers are compared with the API's answers for the same requests; screenshots land in var/screenshots/."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.components import Tansu, create_database, drop_database
from tests.faults.stack import API_KEY, Stack
from tests.flink.test_job import job_env, kill, start_job, tail

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EMPTY_API_KEY = "browser-empty-api-key"
DAYS = 3  # events over the DAYS days before `end`, three hours ago
PERSONS = 40


def seed_events(end: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """PostHog events of PERSONS users, in time order: sessions of page views, some sign-ups and purchases,
    each session with its $session_id, and an $identify with person properties; all before `end`. Then one
    event an hour ago, which moves the Flink job's watermark past every seeded session (its own session
    stays open). In time order, because the job counts an event behind its watermark as late, in no
    session: that holds for heartbeats too, so this stack sends none."""
    events: list[dict[str, Any]] = []
    for n in range(PERSONS):
        distinct_id = f"user-{n:02d}"
        browser = rng.choice(["Chrome", "Firefox", "Safari"])
        plan = rng.choice(["free", "pro"])
        for day in range(rng.randint(1, DAYS), 0, -1):
            at = end - timedelta(days=day) + timedelta(hours=rng.randint(0, 20), minutes=rng.randint(0, 59))
            session = str(uuid.uuid4())
            names = ["$pageview"] * rng.randint(1, 4)
            if day == DAYS or n % 3 == 0:
                names += ["signed_up"]
            if n % 4 == 0:
                names += ["purchase"]
            for name in names:
                properties: dict[str, Any] = {"$session_id": session, "$browser": browser,
                                              "$current_url": f"https://shop.example/{rng.choice('abc')}"}  # fmt: skip
                if name == "purchase":
                    properties["amount"] = rng.randint(5, 120)
                events.append({"event": name, "distinct_id": distinct_id, "uuid": str(uuid.uuid4()),
                               "timestamp": at.isoformat(), "properties": properties})  # fmt: skip
                at += timedelta(seconds=rng.randint(20, 240))
        events.append({"event": "$identify", "distinct_id": distinct_id, "uuid": str(uuid.uuid4()),
                       "timestamp": (end - timedelta(days=1, hours=3)).isoformat(),
                       "properties": {"$set": {"plan": plan, "email": f"{distinct_id}@shop.example"}}})  # fmt: skip
    events.sort(key=lambda e: e["timestamp"])
    events.append({"event": "app_opened", "distinct_id": "user-last", "uuid": str(uuid.uuid4()),
                   "timestamp": (end + timedelta(hours=2)).isoformat(), "properties": {}})  # fmt: skip
    return events


async def wait_for(stack: Stack, query: str, expected: int, timeout: float = 180) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = int((await stack.sql(query))[0]["n"])
        if got == expected:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{query}: {got}, not {expected}, after {timeout}s")
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
async def stack(
    module_broker: Tansu, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """The running stack, seeded; the environment the browser tests get."""
    if not (WEB / "dist" / "index.html").is_file() or not (WEB / "node_modules").is_dir():
        pytest.fail("web/dist is not built: run scripts/web.sh (make setup does)", pytrace=False)
    tmp = tmp_path_factory.mktemp("browser")
    dsn = await create_database()
    running = Stack(tmp, module_broker.bootstrap, dsn, ["capture", "persons", "writer"])
    job = None
    try:
        running.up()
        admin = [sys.executable, "-m", "workers", "admin", "create-project", "--name", "empty"]
        await asyncio.to_thread(subprocess.run, [*admin, "--token", "browser-empty-token", "--api-key", EMPTY_API_KEY],
                                env=running.env, check=True, capture_output=True)  # fmt: skip
        job = start_job(job_env(module_broker, tmp / "checkpoints"), tmp / "flink.log")
        now = datetime.now(UTC)
        end = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        events = seed_events(end, random.Random(11))
        for start in range(0, len(events), 200):
            assert await running.send_posthog(events[start : start + 200]) == 200
        await wait_for(running, "SELECT uniqExact(uuid) AS n FROM events", len(events))
        # a session per $session_id, and a window session per person for their $identify (no $session_id);
        # the last event's is open
        sessions = {e["properties"]["$session_id"] for e in events if "$session_id" in e["properties"]}
        try:
            await wait_for(running, "SELECT count() AS n FROM sessions_merged", len(sessions) + PERSONS)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{tail(tmp / 'flink.log')}") from None
        yield {
            **os.environ,
            "UA_WEB_URL": running.url("QUERY_PORT", ""),
            "UA_CAPTURE_URL": running.url("CAPTURE_PORT", ""),
            "UA_API_KEY": API_KEY,
            "UA_EMPTY_API_KEY": EMPTY_API_KEY,
            "UA_TOKEN": "faults-token",
            "UA_DATE_FROM": (end - timedelta(days=DAYS)).date().isoformat(),
            "UA_DATE_TO": now.date().isoformat(),
            "UA_CHROMIUM": CHROMIUM,
            "UA_SCREENSHOTS": str(SCREENSHOTS),
        }
    finally:
        if job is not None:
            kill(job)
        running.down()
        await drop_database(dsn)


SCRIPTS = sorted(p.name for p in (WEB / "e2e").glob("*.test.mjs"))


def test_there_are_browser_tests() -> None:
    assert len(SCRIPTS) >= 6, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_page(stack: dict[str, str], script: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(["node", "--test", "--test-reporter=spec", f"e2e/{script}"], cwd=WEB, env=stack,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]

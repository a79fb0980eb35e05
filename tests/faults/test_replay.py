"""Replay on the real workers: events a project's JSON Schema rejects are parked (`schema_invalid`),
indexed by the dlq worker, listed and replayed by `python -m workers dlq` once the schema is relaxed, and
stored exactly once; a second replay sends nothing. A message that fails again after a replay comes back
parked with its attempts counted, and past DLQ_MAX_ATTEMPTS it is `dead` and never replayed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from tests.components import Tansu, wait_until
from tests.faults.stack import TOKEN, Stack

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.clickhouse]

SCHEMA = {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}
BAD = 24  # purchases whose amount is a string
GOOD = 36  # purchases with a number, and page views
MAX_ATTEMPTS = 3  # DLQ_MAX_ATTEMPTS (the default, set here so the test says it)


def dlq(stack: Stack, *args: object, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m workers dlq <args>` with the stack's environment."""
    return subprocess.run(
        [sys.executable, "-m", "workers", "dlq", *map(str, args)], env={**stack.env, **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def replayed(result: subprocess.CompletedProcess[str]) -> str:
    """The replay's closing line, after checking it exited 0."""
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def in_list(uuids: list[str]) -> str:
    return "toString(uuid) IN (" + ", ".join(f"'{u}'" for u in uuids) + ")"


async def test_parked_events_are_replayed_once_and_dead_ones_never(
    broker: Tansu, dsn: str, tmp_path: Path
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    def purchase(n: int, amount: object) -> dict[str, Any]:
        return {"event": "purchase", "distinct_id": f"buyer-{n % 5}", "uuid": str(uuid.uuid4()),
                "timestamp": (start + timedelta(seconds=n)).isoformat(), "properties": {"amount": amount}}  # fmt: skip

    bad = [purchase(n, f"{n}.50") for n in range(BAD)]
    good = [purchase(n, n + 0.5) if n % 2 else {**purchase(n, None), "event": "$pageview", "properties": {}}
            for n in range(BAD, BAD + GOOD)]  # fmt: skip
    events = [e for n in range(max(BAD, GOOD)) for e in bad[n : n + 1] + good[n : n + 1]]
    bad_uuids = sorted(e["uuid"] for e in bad)

    with Stack(tmp_path, broker.bootstrap, dsn, ["capture", "persons", "writer", "dlq"],
               persons_config_refresh_seconds=0.5, dlq_max_attempts=MAX_ATTEMPTS) as stack:  # fmt: skip
        conn = await asyncpg.connect(dsn)
        try:
            project = await conn.fetchval("SELECT id FROM projects WHERE api_token = $1", TOKEN)
            await conn.execute(
                "INSERT INTO event_schemas (project_id, event, json_schema) VALUES ($1, 'purchase', $2::jsonb)",
                project, orjson.dumps(SCHEMA).decode(),
            )  # fmt: skip

            async def parked() -> list[asyncpg.Record]:
                return await conn.fetch(
                    "SELECT id, uuid, state, attempts, stage, reason, source_topic, error FROM dead_letters"
                    " ORDER BY id"
                )

            async def state_of(*ids: int) -> list[tuple[str, int]]:
                rows = await conn.fetch(
                    "SELECT state, attempts FROM dead_letters WHERE id = ANY($1::bigint[]) ORDER BY id", ids
                )
                return [(r["state"], r["attempts"]) for r in rows]

            for k in range(0, len(events), 10):
                assert await stack.send_posthog(events[k : k + 10]) == 200

            async def all_in() -> bool:
                return len(await parked()) == BAD and await stack.count() == GOOD

            assert await wait_until(all_in, timeout=60, interval=0.2)
            rows = await parked()
            assert sorted(r["uuid"] for r in rows) == bad_uuids
            assert {
                (r["state"], r["attempts"], r["stage"], r["reason"], r["source_topic"]) for r in rows
            } == {("parked", 1, "persons", "schema_invalid", "events_raw")}
            assert all("amount" in r["error"] for r in rows), rows[0]["error"]
            assert await stack.count(where=in_list(bad_uuids)) == 0

            listed = dlq(stack, "--list", "--reason", "schema_invalid", "--json")
            assert listed.returncode == 0, listed.stderr
            lines = [orjson.loads(line) for line in listed.stdout.splitlines()]
            assert sorted(line["uuid"] for line in lines) == bad_uuids
            assert {(line["state"], line["attempts"], line["reason"]) for line in lines} == {
                ("parked", 1, "schema_invalid")
            }
            table = dlq(stack, "--list", "--reason", "schema_invalid", "--max", "3")
            print(f"\n$ dlq --list --reason schema_invalid --json | head -2\n{listed.stdout[:700]}")
            print(f"$ dlq --list --reason schema_invalid --max 3\n{table.stdout}")

            # replayed while the schema still rejects them: they come back parked, attempts 2
            again, dead = rows[0]["id"], rows[1]["id"]
            assert (
                replayed(dlq(stack, "--replay", "--id", again, "--id", dead))
                == "replayed 2, skipped 0, dead 0"
            )
            assert await wait_until(
                lambda: _equal(state_of(again, dead), [("parked", 2), ("parked", 2)]),
                timeout=30,
                interval=0.2,
            )
            # the third attempt fails too: the dlq worker indexes it dead (attempts reached DLQ_MAX_ATTEMPTS)
            assert replayed(dlq(stack, "--replay", "--id", again)) == "replayed 1, skipped 0, dead 0"
            assert await wait_until(lambda: _equal(state_of(again), [("dead", 3)]), timeout=30, interval=0.2)
            # a replay run with a lower DLQ_MAX_ATTEMPTS marks a row past it dead without sending it
            marked = dlq(stack, "--replay", "--id", dead, "--json", DLQ_MAX_ATTEMPTS="2")
            assert replayed(marked) == ('{"replayed":0,"skipped":0,"dead":1,"stopped":false,"dry_run":false}')
            assert await state_of(dead) == [("dead", 2)]
            never = sorted(r["uuid"] for r in rows[:2])

            await conn.execute("DELETE FROM event_schemas WHERE project_id = $1", project)
            await asyncio.sleep(1.5)  # past PERSONS_CONFIG_REFRESH_SECONDS: the next batch reloads the rules

            started = time.monotonic()
            replay = dlq(stack, "--replay", "--reason", "schema_invalid")
            print(f"$ dlq --replay --reason schema_invalid\n{replay.stdout}")
            assert replayed(replay) == f"replayed {BAD - 2}, skipped 0, dead 0"
            want = sorted(r["uuid"] for r in rows[2:])

            async def stored() -> bool:
                return await stack.count(where=in_list(want)) == BAD - 2

            assert await wait_until(stored, timeout=60, interval=0.2)
            print(f"replayed {BAD - 2} stored {time.monotonic() - started:.1f}s after the replay began")
            assert await stack.stored_uuids(in_list(bad_uuids)) == want
            # not stored twice, even before a merge
            assert await rows_and_uuids(stack, in_list(bad_uuids)) == (BAD - 2, BAD - 2)
            assert {(r["id"], r["state"], r["attempts"]) for r in await parked()} == {
                *((r["id"], "replayed", 1) for r in rows[2:]),
                (again, "dead", 3),
                (dead, "dead", 2),
            }

            # nothing is left to replay; a second run sends nothing and nothing more is stored
            assert (
                replayed(dlq(stack, "--replay", "--reason", "schema_invalid"))
                == "replayed 0, skipped 0, dead 0"
            )
            before = await rows_and_uuids(stack)
            await asyncio.sleep(4)
            assert await rows_and_uuids(stack) == before == (GOOD + BAD - 2, GOOD + BAD - 2)
            assert await stack.count(where=in_list(never)) == 0
            assert len(await parked()) == BAD
        finally:
            await conn.close()


async def rows_and_uuids(stack: Stack, where: str = "1") -> tuple[int, int]:
    """Rows of `events` without FINAL (a duplicate not merged yet counts) and distinct uuids."""
    rows = await stack.sql(f"SELECT count() AS n, uniqExact(uuid) AS u FROM events WHERE {where}")
    return int(rows[0]["n"]), int(rows[0]["u"])


async def _equal(value: Any, expected: Any) -> bool:
    return bool(await value == expected)

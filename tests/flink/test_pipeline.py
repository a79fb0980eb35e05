"""The Flink job's output through the real writer into chDB and out of the query API: the stored sessions,
minute counts and late events equal tests/flink/reference.py, the hourly and daily rollups plus the late
events equal count() over raw events in each project's zone, and /api/sessions, /api/paths and rollup-read
trends totals equal what the reference sessions and the raw events give."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from tests.components import Tansu
from tests.faults.stack import Stack
from tests.flink.reference import epoch_ms, reference, session_key
from tests.flink.test_job import DEFAULTS, create_topics, job_env, produce, start_job, tail
from tests.flink.traffic import generate
from workers.migrate import migrate_postgres
from workers.projects import Project, ensure_project

pytestmark = [pytest.mark.flink, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

ZONES = ("America/New_York", "Asia/Kolkata")  # whole-hour and half-hour offsets
RANGE = {"date_from": "2026-10-31", "date_to": "2026-11-09"}


async def projects(dsn: str) -> list[Project]:
    await migrate_postgres(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        return [await ensure_project(pool, f"flink-{n}", timezone=zone) for n, zone in enumerate(ZONES)]
    finally:
        await pool.close()


async def wait_stored(stack: Stack, expected: dict[str, int], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stored = {table: await stack.count(table) for table in expected}
        if stored == expected:
            return
        assert time.monotonic() < deadline, (stored, expected, tail(stack.directory / "writer.log"))
        await asyncio.sleep(1)


async def api(stack: Stack, path: str, key: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {key}"}
        async with http.post(stack.url("QUERY_PORT", path), json=body, headers=headers) as response:
            answer = await response.json()
    assert response.status == 200, answer
    return answer


def merged_sessions(sessions: list[dict]) -> dict[tuple[int, str], dict]:
    """sessions_merged of the reference rows: one session per (project, id), several rows folded."""
    out: dict[tuple[int, str], dict] = {}
    for s in sessions:
        key = (s["project_id"], s["session_id"])
        if key in out:
            m = out[key]
            m["start"], m["end"] = min(m["start"], s["start"]), max(m["end"], s["end"])
            m["event_count"] += s["event_count"]
        else:
            out[key] = dict(s)
    return out


def expected_sessions(merged: dict, project: Project, body: dict[str, Any]) -> dict[str, list]:
    tz = ZoneInfo(project.timezone)
    days = [date.fromisoformat(body["date_from"]) + timedelta(days=n) for n in range(10)]
    per: dict[str, list[dict]] = defaultdict(list)
    for (p, _), s in merged.items():
        local = datetime.fromtimestamp(s["start"] / 1000, tz).date()
        if p == project.id and days[0] <= local <= days[-1]:
            per[local.isoformat()].append(s)
    labels = [d.isoformat() for d in days]
    return {
        "labels": labels,
        "sessions": [len(per[d]) for d in labels],
        "avg_duration_seconds": [
            round(sum((s["end"] - s["start"]) / 1000 for s in per[d]) / len(per[d]), 6) if per[d] else 0
            for d in labels
        ],
        "bounce_rate": [
            round(sum(s["event_count"] == 1 for s in per[d]) / len(per[d]), 6) if per[d] else 0
            for d in labels
        ],
    }


def expected_paths(stream: list[dict], merged: dict, project: Project, steps: int) -> list[dict]:
    """Each event (once per uuid) in its SDK session, or else in the stored window session of its distinct
    id whose [start, end] holds it."""
    spans: dict[tuple, list[tuple[int, int, str]]] = defaultdict(list)
    for (p, sid), s in merged.items():
        pkey = s["distinct_id"] if s["kind"] == "window" else sid
        spans[(p, s["kind"], pkey)].append((s["start"], s["end"], sid))
    tz = ZoneInfo(project.timezone)
    start = datetime.combine(date.fromisoformat(RANGE["date_from"]), datetime.min.time(), tz)
    end = datetime.combine(date.fromisoformat(RANGE["date_to"]) + timedelta(days=1), datetime.min.time(), tz)
    seen: set[str] = set()
    by_session: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    for e in stream:
        if e["project_id"] != project.id or e["uuid"] in seen:
            continue
        seen.add(e["uuid"])
        moment = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        if not start <= moment < end:
            continue
        ms = epoch_ms(e["timestamp"])
        kind, pkey = session_key(e)
        if kind != "window":  # the SDK's session, stored or not
            by_session[pkey].append((moment.astimezone(UTC), e["uuid"], e["event"]))
        for first, last, sid in spans.get((project.id, kind, pkey), []) if kind == "window" else []:
            if first <= ms <= last:
                by_session[sid].append((moment.astimezone(UTC), e["uuid"], e["event"]))
    edges: Counter[tuple[str, str]] = Counter()
    for events in by_session.values():
        names = [name for _, _, name in sorted(events)][:steps]
        edges.update((f"{i + 1}_{names[i]}", f"{i + 2}_{names[i + 1]}") for i in range(len(names) - 1))
    ranked = sorted(edges.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    return [{"source": s, "target": t, "value": n} for (s, t), n in ranked]


async def test_job_output_through_the_writer_and_the_api(broker: Tansu, dsn: str, tmp_path: Path) -> None:
    a, b = await projects(dsn)
    stream = generate(20_000, projects=(a.id, b.id))
    sessions, counts, late = reference([dict(e) for e in stream], DEFAULTS.flink_lateness_seconds,
                                       DEFAULTS.session_gap_minutes)  # fmt: skip
    await create_topics(broker)
    ends = await produce(broker, stream)
    job = start_job(job_env(broker, tmp_path / "checkpoints"), tmp_path / "job.log",
                    "--bounded-offsets", json.dumps(ends))  # fmt: skip
    assert await asyncio.to_thread(job.wait, 240) == 0, tail(tmp_path / "job.log")

    (tmp_path / "stack").mkdir()
    with Stack(tmp_path / "stack", broker.bootstrap, dsn, ["writer"]) as stack:
        await wait_stored(stack, {"events": len({e["uuid"] for e in stream}), "sessions": len(sessions),
                                  "event_counts_1m": len(counts), "late_events": len(late)})  # fmt: skip

        rows = await stack.sql(
            "SELECT session_id, kind, project_id, toString(person_id) AS person_id, distinct_id,"
            " toUnixTimestamp64Milli(start) AS start, toUnixTimestamp64Milli(`end`) AS `end`, duration_seconds,"
            " event_count, pageview_count, entry_url, exit_url, bounced, browser, os, device_type, country"
            " FROM sessions FINAL"
        )
        stored = sorted((tuple(r.values()) for r in rows), key=str)
        as_row = lambda s: (s["session_id"], s["kind"], s["project_id"], s["person_id"], s["distinct_id"],  # noqa: E731
                            s["start"], s["end"], s["duration_seconds"], s["event_count"], s["pageview_count"],
                            s["entry_url"] or "", s["exit_url"] or "", int(s["bounced"]), s["browser"] or "",
                            s["os"] or "", s["device_type"] or "", s["country"] or "")  # fmt: skip
        assert stored == sorted((as_row(s) for s in sessions), key=str)

        rows = await stack.sql(
            "SELECT project_id, event, toUnixTimestamp(minute) * 1000 AS minute, count,"
            " arraySort(arrayZip(arrayMap(p -> toString(p), persons), distinct_ids)) AS actors"
            " FROM event_counts_1m FINAL"
        )
        key = lambda c: (c["project_id"], c["event"], c["minute"])  # noqa: E731
        assert sorted(rows, key=key) == sorted(counts, key=key)

        for p in (a, b):
            # the rollups plus the late events are count() over the raw events, by UTC hour and by local day
            for rollup, bucket, raw_bucket in (
                ("event_counts_1h", "hour", "toStartOfHour(timestamp)"),
                ("event_counts_1d", "local_day", f"toDate(timestamp, '{p.timezone}')"),
            ):
                rolled = await stack.sql(
                    f"SELECT event, toString({bucket}) AS bucket, arraySum(maxMapMerge(counts).2) AS n"
                    f" FROM {rollup} WHERE project_id = {p.id} GROUP BY event, bucket"
                )
                late_rows = await stack.sql(
                    f"SELECT event, toString({raw_bucket}) AS bucket, uniqExact(uuid) AS n FROM late_events"
                    f" WHERE project_id = {p.id} GROUP BY event, bucket"
                )
                raw = await stack.sql(
                    f"SELECT event, toString({raw_bucket}) AS bucket, uniqExact(uuid) AS n FROM events"
                    f" WHERE project_id = {p.id} GROUP BY event, bucket"
                )
                total: Counter[tuple[str, str]] = Counter()
                for r in rolled + late_rows:
                    total[(r["event"], r["bucket"])] += int(r["n"])
                assert total == Counter({(r["event"], r["bucket"]): int(r["n"]) for r in raw})
                assert late_rows  # the late events are really part of the sum

            merged = merged_sessions(sessions)
            answer = await api(stack, "/api/sessions", p.api_key, {"interval": "day", **RANGE})
            assert answer == expected_sessions(merged, p, RANGE)
            assert sum(answer["sessions"]) == sum(1 for (q, _) in merged if q == p.id)
            answer = await api(stack, "/api/paths", p.api_key, {"steps": 4, "limit": 1000, **RANGE})
            assert answer["edges"] == expected_paths(stream, merged, p, 4)

            # totals and uniques read the rollups (with their late events) and equal the raw path (a filter
            # forces it)
            for measure, interval in (
                ("totals", "day"),
                ("totals", "hour"),
                ("uniques", "day"),
                ("uniques", "hour"),
            ):
                body = {"measure": measure, "interval": interval, **RANGE}
                if interval == "hour":
                    body.update(date_from="2026-11-01", date_to="2026-11-03")
                rolled = await api(
                    stack, "/api/trends", p.api_key, {**body, "events": [{"event": "$pageview"}]}
                )
                every = [{"property": "other", "op": "is_set"}]  # every event has it
                raw = await api(stack, "/api/trends", p.api_key,
                                {**body, "events": [{"event": "$pageview", "filters": every}]})  # fmt: skip
                assert rolled == raw and sum(rolled["series"][0]["values"]) > 0

"""Latency of each analytics endpoint on a big chDB, beside the same statement run as plain SQL.

    .venv/bin/python bench/queries.py [--events 10000000] [--persons 200000] [--days 90] [--runs 10]

Fills a fresh chDB (temp dir) with bench/generate.py's seeded data for `--days` days up to today (sessions,
anonymous browsing then identify, merges, personless ids, duplicate sends, late events, hot properties)
and makes a Postgres project, and waits for the background merges the insert started. Then, for each
request, one untimed request, then `--runs` times through the real query API
(aiohttp, in this process) cold (`"refresh": true`, the result cache skipped), each run followed by the
endpoint's own SQL statements run directly through the ClickHouse client (the ceiling: no parsing, name
checks, HTTP or JSON), then `--runs` warm (cached) requests. Prints p50/p95 and writes var/bench/queries.json.

`--keep DIR` keeps the filled chDB in DIR and reuses it on the next run with the same data options (the fill
of 10M events takes about 20 minutes); `--only a,b` times only the named requests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg
import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from bench.generate import data_arguments, generate, insert
from tests.components import create_database, drop_database
from workers.clickhouse import ClickHouse, connect
from workers.migrate import migrate_clickhouse, migrate_postgres
from workers.projects import ensure_project
from workers.query import (
    cohorts,
    events,
    funnels,
    lifecycle,
    paths,
    retention,
    sessions,
    sql,
    stickiness,
    trends,
)
from workers.query.api import create_app
from workers.query.sql import cohort_references, with_cohort_versions
from workers.settings import Settings


def requests(days: int) -> dict[str, tuple[str, dict[str, Any]]]:
    today = datetime.now(UTC).date()
    week = {"date_from": str(today - timedelta(days=29)), "date_to": str(today - timedelta(days=1))}
    return {
        "trends_uniques_day": ("/api/trends", {"events": [{"event": "$pageview"}], "measure": "uniques",
                                               "interval": "day", **week}),
        "trends_breakdown": ("/api/trends", {"events": [{"event": "purchase"}], "measure": "totals", "interval": "day",
                                             "breakdown": {"type": "event", "property": "plan", "limit": 5}, **week}),
        "trends_person_filter": ("/api/trends", {"events": [{"event": "signed_up", "filters": [
            {"type": "person", "property": "tier", "op": "eq", "value": "gold"}]}], "measure": "uniques",
            "interval": "week", **week}),
        "funnel_3_steps": ("/api/funnels", {"steps": [{"event": "$pageview"}, {"event": "signed_up"},
                                                      {"event": "purchase"}], "window_seconds": 86400 * 7, **week}),
        "funnel_strict_person_filter": ("/api/funnels", {"steps": [{"event": "$pageview"}, {"event": "signed_up",
            "filters": [{"type": "person", "property": "tier", "op": "eq", "value": "gold"}]}],
            "window_seconds": 3600, "order": "strict", **week}),
        "funnel_unordered_complete": ("/api/funnels", {"steps": [{"event": "$pageview"}, {"event": "signed_up"},
            {"event": "purchase"}], "window_seconds": 86400, "order": "unordered", "exclusions": [
            {"event": "$autocapture", "from_step": 2, "to_step": 3}], "breakdown": {"type": "person",
            "property": "tier", "limit": 3}, "histogram": {"from_step": 1, "to_step": 3, "bins": 20}, **week}),
        "retention_weekly": ("/api/retention", {"start_event": "signed_up", "return_event": "$any", "period": "week",
                                                "periods": 4, **week}),
        "trends_hot_properties": ("/api/trends", {"events": [{"event": "$pageview", "filters": [
            {"property": "$current_url", "op": "contains", "value": "pricing"}]}], "measure": "uniques",
            "interval": "day", "breakdown": {"type": "event", "property": "$browser", "limit": 5}, **week}),
        "funnel_breakdown": ("/api/funnels", {"steps": [{"event": "$pageview"}, {"event": "signed_up", "filters": [
            {"property": "plan", "op": "in", "value": ["pro", "team"]}]}, {"event": "purchase"}],
            "window_seconds": 86400, "breakdown": {"type": "event", "property": "$browser", "limit": 5}, **week}),
        "sessions_day": ("/api/sessions", {"interval": "day", **week}),
        "sessions_filtered": ("/api/sessions", {"interval": "week", "filters": [
            {"property": "$os", "op": "eq", "value": "iOS"}], **week}),
        "paths_5_steps": ("/api/paths", {"steps": 5, "limit": 50, **week}),
        "stickiness_day": ("/api/stickiness", {"events": [{"event": "$pageview"}, {"event": "purchase"}],
                                               "interval": "day", **week}),
        "lifecycle_day": ("/api/lifecycle", {"event": "$pageview", "interval": "day", **week}),
        "lifecycle_person_filter": ("/api/lifecycle", {"event": "purchase", "filters": [
            {"type": "person", "property": "tier", "op": "eq", "value": "gold"}], "interval": "week", **week}),
        # GET: the query string; no result cache, so "warm" is the same request again
        "events_newest_100": ("/api/events", {"limit": "100"}),
        "events_filtered_1000": ("/api/events", {"limit": "1000", "event": "purchase", "filters": orjson.dumps(
            [{"property": "plan", "op": "eq", "value": "pro"}]).decode()}),
    }  # fmt: skip


# two dynamic cohorts, made through the API once the data is in: one of person properties, one of behaviour
COHORTS = [
    {"name": "gold or score over 90", "kind": "dynamic", "match": "any", "filters": [
        {"type": "person", "property": "tier", "op": "eq", "value": "gold"},
        {"type": "person", "property": "score", "op": "gt", "value": 90}]},
    {"name": "3+ page views and a purchase in 30 days", "kind": "dynamic", "match": "all", "filters": [
        {"type": "behavioral", "event": "$pageview", "min_count": 3, "days": 30},
        {"type": "behavioral", "event": "purchase", "days": 30}]},
]  # fmt: skip


def cohort_requests(days: int, made: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The requests that need the cohorts: a funnel with a person filter broken down by both, and the
    behavioural cohort's computation (`POST /api/cohorts/{id}/refresh`)."""
    week = requests(days)["funnel_3_steps"][1]
    return {
        "funnel_person_filter_cohort_breakdown": ("/api/funnels", {
            "steps": [{"event": "$pageview"}, {"event": "signed_up", "filters": [
                {"type": "person", "property": "tier", "op": "in", "value": ["gold", "silver"]}]},
                {"event": "purchase"}],
            "window_seconds": 86400, "breakdown": {"type": "cohort", "cohorts": [c["id"] for c in made]},
            "date_from": week["date_from"], "date_to": week["date_to"]}),
        "cohort_dynamic_compute": (f"/api/cohorts/{made[1]['id']}/refresh", {}),
    }  # fmt: skip


def plain_sql(
    path: str, body: dict[str, Any], project_id: int, made: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    """The statements the endpoint runs, to time without our layer."""
    if path.startswith("/api/cohorts/"):  # the computation's INSERT ... SELECT, as an unused cohort 0
        params: dict[str, Any] = {"project_id": project_id, "cohort_id": 0, "version": 1,
                                  "computed_at": datetime.now(UTC)}  # fmt: skip
        return [(cohorts.dynamic_sql(cohorts.definition(COHORTS[1]), params), params)]
    if path == "/api/trends":
        q = trends.parse(body)
        return [trends.sql_for(q, s, project_id, "UTC") for s in q.series]
    if path == "/api/funnels":
        q = funnels.parse(body)
        versions = {c["id"]: c["version"] for c in made}
        q = with_cohort_versions(q, {c: versions[c] for _, c in cohort_references(q)})
        return [funnels.sql_for(q, project_id, "UTC")]
    if path == "/api/retention":
        return [retention.sql_for(retention.parse(body), project_id, "UTC")]
    if path == "/api/events":  # the page as one plain statement over the whole range (no day windows)
        statement, params, limit = events.events_sql(project_id, body)
        return [(statement, {**params, "scan": 2 * (limit + 1)})]
    if path == "/api/stickiness":
        q = stickiness.parse(body)
        return [stickiness.sql_for(q, s, project_id, "UTC") for s in q.series]
    if path == "/api/lifecycle":
        q = lifecycle.parse(body)
        intervals = len(stickiness.interval_labels(q.interval, q.date_from, q.date_to, "UTC"))
        return [lifecycle.sql_for(q, intervals, project_id, "UTC")]
    if path == "/api/sessions":
        return [sessions.sql_for(sessions.parse(body), project_id, "UTC")]
    return [paths.sql_for(paths.parse(body), project_id, "UTC")]


async def ask(client: TestClient, path: str, body: dict[str, Any], headers: dict[str, str]) -> ClientResponse:
    if path.endswith("/refresh"):  # a cohort's computation: every run computes afresh
        return await client.post(path, headers=headers)
    if path == "/api/events":
        return await client.get(
            path, params={k: v for k, v in body.items() if k != "refresh"}, headers=headers
        )
    return await client.post(path, json=body, headers=headers)


def quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(1000 * statistics.median(ordered), 1), "p95_ms": round(1000 * p95, 1)}


async def fill(ch: ClickHouse, project_id: int, args: argparse.Namespace) -> tuple[float, float]:
    """The generator's rows for `--days` days up to now; (seconds to generate, seconds to insert)."""
    started = time.perf_counter()
    begin = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=args.days - 1
    )
    data = generate(args.seed, project_id, args.persons, args.days, args.events, begin)
    generated = time.perf_counter()
    await insert(ch, data, chunk_rows=200_000)
    return generated - started, time.perf_counter() - generated


async def settle(ch: ClickHouse, limit_seconds: float = 300) -> float:
    """Wait until the background merges the insert started are done (they would compete with the first
    timed requests), as in a warehouse that has been running; the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_seconds:
        if not (await ch.query("SELECT count() AS n FROM system.merges"))[0]["n"]:
            break
        await asyncio.sleep(1)
    return time.perf_counter() - started


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    filled = tmp / "filled.json"
    options = {k: getattr(args, k) for k in ("events", "persons", "days", "seed")}
    kept = orjson.loads(filled.read_bytes()) if filled.exists() else None
    if (tmp / "chdb").exists() and (kept is None or kept["options"] != options):
        raise SystemExit(f"{tmp} holds a chDB of other data (or an unfinished fill): remove it first")
    dsn = await create_database()
    ch = await connect(f"chdb://{tmp}/chdb")
    try:
        await migrate_postgres(dsn)
        await migrate_clickhouse(ch)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        project = await ensure_project(pool, "bench", api_token=f"tok-{uuid.uuid4().hex}")
        if kept is not None and kept["project_id"] == project.id:
            await ch.execute("TRUNCATE TABLE cohort_people")  # the new Postgres numbers its cohorts afresh
            generate_seconds, insert_seconds = kept["generate_seconds"], kept["insert_seconds"]
        else:
            generate_seconds, insert_seconds = await fill(ch, project.id, args)
        settle_seconds = await settle(ch)
        filled.write_bytes(
            orjson.dumps(
                {
                    "options": options,
                    "project_id": project.id,
                    "generate_seconds": generate_seconds,
                    "insert_seconds": insert_seconds,
                }
            )
        )
        count = (await ch.query("SELECT count() AS n FROM events"))[0]["n"]
        settings = Settings.from_env({"QUERY_MAX_SECONDS": "120"})
        results: dict[str, Any] = {
            "events": count,
            "persons": args.persons,
            "generate_seconds": round(generate_seconds, 1),
            "insert_seconds": round(insert_seconds, 1),
            "settle_seconds": round(settle_seconds, 1),
        }
        headers = {"Authorization": f"Bearer {project.api_key}"}
        async with TestClient(TestServer(create_app(settings, ch, pool))) as client:
            made = []
            for cohort in COHORTS:
                started = time.perf_counter()
                response = await client.post("/api/cohorts", json=cohort, headers=headers)
                made.append(await response.json())
                assert response.status == 201, made[-1]
                print(f"cohort {cohort['name']!r}: {made[-1]['count']:,} persons, made in "
                      f"{time.perf_counter() - started:.2f} s", flush=True)  # fmt: skip
            for name, (path, body) in {**requests(args.days), **cohort_requests(args.days, made)}.items():
                if args.only and name not in args.only.split(","):
                    continue
                cold, warm, plain = [], [], []
                await (await ask(client, path, {**body, "refresh": True}, headers)).read()  # not timed
                for _ in range(args.runs):  # cold and plain SQL alternate, so both see the same machine
                    started = time.perf_counter()
                    response = await ask(client, path, {**body, "refresh": True}, headers)
                    answer = await response.read()
                    cold.append(time.perf_counter() - started)
                    assert response.status == 200, answer[:500]
                    await cohorts.pruned()  # a computation's background delete, not timed in the next run
                    started = time.perf_counter()
                    for statement, params in plain_sql(path, body, project.id, made):
                        await (ch.execute if path.startswith("/api/cohorts/") else ch.query)(
                            statement, params
                        )
                    plain.append(time.perf_counter() - started)
                    if path.startswith("/api/cohorts/"):  # the unused cohort 0's rows, deleted untimed
                        await ch.execute(sql.fragment("cohort_prune.sql"), {"project_id": project.id,
                                                                            "cohort_id": 0, "keep": 0})  # fmt: skip
                for _ in range(args.runs):
                    started = time.perf_counter()
                    response = await ask(client, path, body, headers)
                    await response.read()
                    warm.append(time.perf_counter() - started)
                    await cohorts.pruned()
                row = {"cold": quantiles(cold), "warm": quantiles(warm), "plain_sql": quantiles(plain)}
                row["cold_over_plain_p95"] = round(
                    row["cold"]["p95_ms"] / max(row["plain_sql"]["p95_ms"], 0.1), 2
                )
                results[name] = row
                print(f"{name:22} cold p50 {row['cold']['p50_ms']:8.1f} ms  p95 {row['cold']['p95_ms']:8.1f} ms   "
                      f"warm p95 {row['warm']['p95_ms']:6.1f} ms   plain SQL p95 {row['plain_sql']['p95_ms']:8.1f} ms   "
                      f"ratio {row['cold_over_plain_p95']}", flush=True)  # fmt: skip
        await pool.close()
        return results
    finally:
        await ch.close()
        await drop_database(dsn)


def main() -> None:
    parser = data_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="keep the filled chDB here, and reuse it when it matches")
    parser.add_argument("--only", default="", help="comma-separated request names to time")
    args = parser.parse_args()
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run(args, args.keep))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = asyncio.run(run(args, Path(tmp)))
    print(f"{results['events']:,} stored events, {args.persons:,} persons; generated in "
          f"{results['generate_seconds']} s, inserted in {results['insert_seconds']} s, merges settled in "
          f"{results['settle_seconds']} s")  # fmt: skip
    (out / "queries.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()

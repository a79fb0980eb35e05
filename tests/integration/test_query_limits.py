"""The query API's budgets over a real chDB: a key past its concurrency gets a 429 with Retry-After at once
while another key's queries run; an endpoint's ClickHouse limits stop only that endpoint's statements."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from workers.clickhouse import ClickHouse, connect
from workers.migrate import migrate_clickhouse
from workers.projects import ensure_project
from workers.query.api import create_app
from workers.settings import Settings, SettingsError

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
OPERATOR = "limits-operator-key"
SLOW = "SELECT sleepEachRow(0.4) AS s FROM numbers(2)"  # 0.8 s


@pytest.fixture(scope="module")
async def ch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClickHouse]:
    path: Path = tmp_path_factory.mktemp("query-limits") / "chdb"
    ch = await connect(f"chdb://{path}")
    await migrate_clickhouse(ch)
    await ch.execute("CREATE TABLE numbers_10 (n UInt32) ENGINE = MergeTree ORDER BY n")
    await ch.insert("numbers_10", ["n"], [(i,) for i in range(10)])
    yield ch
    await ch.close()


@pytest.fixture(scope="module")
async def client(
    ch: ClickHouse, pg_dsn: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[TestClient]:
    settings = make_settings(
        dev_api_key=OPERATOR,
        query_key_concurrency=1,
        query_endpoint_limits='{"sql": {"max_rows_to_read": 5}}',
    )
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    async with TestClient(TestServer(create_app(settings, ch, pool))) as test_client:
        yield test_client
    await pool.close()


async def sql(client: TestClient, query: str) -> tuple[int, Any, str | None]:
    response = await client.post(
        "/api/sql", json={"query": query}, headers={"Authorization": f"Bearer {OPERATOR}"}
    )
    return response.status, await response.json(), response.headers.get("Retry-After")


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("ua_query_rejected_total", {"reason": reason}) or 0.0


async def test_a_key_over_its_concurrency_is_refused_at_once_and_another_key_is_not(
    client: TestClient, pg_dsn: str
) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    other = await ensure_project(pool, "other-key", api_token=f"phc_{uuid.uuid4().hex}")
    await pool.close()
    before = rejected("concurrency")
    slow = asyncio.create_task(sql(client, SLOW))
    await asyncio.sleep(0.2)  # the slow query holds the operator key's only slot
    status, body, retry_after = await sql(client, "SELECT 1 AS one")
    assert (status, retry_after, body["code"]) == (429, "1", "too_many_concurrent_queries")
    assert body["detail"].startswith("this key already has 1 queries running")
    headers = {"Authorization": f"Bearer {other.api_key}"}
    for _ in range(2):  # one after the other: each takes the other key's slot and gives it back
        response = await client.get("/api/events", headers=headers)
        assert (response.status, await response.json()) == (200, {"events": [], "next_cursor": None})
    assert not slow.done()
    assert (await slow)[0] == 200
    assert (await sql(client, "SELECT 1 AS one"))[:2] == (200, {
        "rows": [{"one": 1}], "row_count": 1, "truncated": False,
        "elapsed_seconds": pytest.approx(0, abs=5)})  # fmt: skip
    assert rejected("concurrency") - before == 1


async def test_an_endpoints_row_limit_stops_its_statement_and_no_other_endpoints(
    client: TestClient, pg_dsn: str
) -> None:
    before = rejected("max_rows_to_read")
    status, body, _ = await sql(client, "SELECT sum(n) AS total FROM numbers_10")
    assert (status, body["code"]) == (503, "query_too_expensive")
    assert body["detail"].startswith("over the endpoint's max_rows_to_read")
    assert rejected("max_rows_to_read") - before == 1
    assert (await sql(client, "SELECT 1 AS one"))[0] == 200  # one row read: under the limit
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    other = await ensure_project(pool, "rows-limit", api_token=f"phc_{uuid.uuid4().hex}")
    await pool.close()
    response = await client.get("/api/events", headers={"Authorization": f"Bearer {other.api_key}"})
    assert response.status == 200  # /api/events keeps the default QUERY_MAX_ROWS_TO_READ


def test_an_unknown_endpoint_in_the_limits_stops_the_api_at_start(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(query_endpoint_limits='{"trend": {"max_execution_time": 5}}')
    with pytest.raises(SettingsError, match=r"QUERY_ENDPOINT_LIMITS: unknown endpoints \['trend'\]"):
        create_app(settings, None, None)  # type: ignore[arg-type]

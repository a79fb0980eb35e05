"""The read-only SQL endpoint over a real chDB: JSON rows back, writes refused, nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.clickhouse import ClickHouse, connect
from workers.migrate import migrate_clickhouse
from workers.query.api import create_app
from workers.settings import Settings

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
KEY = "query-test-key"


@pytest.fixture(scope="module")
async def ch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClickHouse]:
    path: Path = tmp_path_factory.mktemp("query") / "chdb"
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
    settings = make_settings(dev_api_key=KEY, query_max_rows=5)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    async with TestClient(TestServer(create_app(settings, ch, pool))) as test_client:
        yield test_client
    await pool.close()


async def post(
    client: TestClient, body: Any, key: str | None = KEY, raw: bytes | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    data = raw if raw is not None else aiohttp.payload.JsonPayload(body)
    response = await client.post("/api/sql", data=data, headers=headers)
    return response.status, await response.json()


async def count(ch: ClickHouse) -> int:
    return int((await ch.query("SELECT count() AS n FROM numbers_10"))[0]["n"])


async def test_select_returns_json_rows(client: TestClient) -> None:
    status, body = await post(
        client, {"query": "SELECT n, toString(n) AS s FROM numbers_10 WHERE n < 3 ORDER BY n"}
    )
    assert status == 200
    assert body["rows"] == [{"n": 0, "s": "0"}, {"n": 1, "s": "1"}, {"n": 2, "s": "2"}]
    assert body["row_count"] == 3 and body["truncated"] is False


async def test_more_rows_than_the_limit_are_cut_and_say_so(client: TestClient) -> None:
    status, body = await post(client, {"query": "SELECT n FROM numbers_10 ORDER BY n"})
    assert status == 200
    assert [r["n"] for r in body["rows"]] == [0, 1, 2, 3, 4]
    assert body["truncated"] is True


@pytest.mark.parametrize("key", [None, "wrong-key", ""])
async def test_missing_or_wrong_key_is_401(client: TestClient, key: str | None) -> None:
    status, body = await post(client, {"query": "SELECT 1"}, key=key)
    assert status == 401 and body["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"sql": "SELECT 1"}', "missing_query"),
        (b'{"query": "  "}', "missing_query"),
    ],
)
async def test_bad_bodies_are_400(client: TestClient, raw: bytes, code: str) -> None:
    status, body = await post(client, None, raw=raw)
    assert status == 400 and body["code"] == code


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO numbers_10 VALUES (99)",
        "DROP TABLE numbers_10",
        "CREATE TABLE x (n UInt8) ENGINE = Memory",
        "ALTER TABLE numbers_10 DELETE WHERE 1",
        "TRUNCATE TABLE numbers_10",
        "SELECT 1; DROP TABLE numbers_10",
        "SELECT * FROM file('/etc/passwd', 'LineAsString') SETTINGS readonly = 0",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    ],
)
async def test_writes_and_escapes_are_400_and_change_nothing(
    client: TestClient, ch: ClickHouse, statement: str
) -> None:
    status, body = await post(client, {"query": statement})
    assert status == 400 and body["code"] == "query_error", body
    assert await count(ch) == 10
    assert [r["name"] for r in await ch.query("SELECT name FROM system.tables WHERE name = 'x'")] == []


async def test_syntax_error_is_400_with_clickhouse_message(client: TestClient) -> None:
    status, body = await post(client, {"query": "SELEC nonsense"})
    assert status == 400 and "Syntax error" in body["detail"]


async def test_unknown_path_is_a_json_404(client: TestClient) -> None:
    response = await client.get("/api/nothing")
    assert response.status == 404 and (await response.json())["code"] == "not_found"

"""The asynch backend of workers.clickhouse against a real clickhouse-server (Debian's 18.16, old dialect).

The server is started by the fixture on free ports in a temp dir; the tests restart it under a connected
client. A missing binary fails the run (tests/clickhouse_server.py says how to install it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from tests.clickhouse_server import ClickHouseServer
from tests.components import free_port
from workers.clickhouse import ClickHouse, ClickHouseError, ClickHouseUnavailable, connect

pytestmark = pytest.mark.clickhouse

COLUMNS = ("uuid", "project_id", "event", "timestamp", "n")
BASE = datetime(2024, 5, 1, tzinfo=UTC)
HOSTILE = [
    "it's",
    'say "hi"',
    "back\\slash \\N \\n \\",
    "tab\there\nnew line\r\0nul",
    "'; DROP TABLE wire; --",
    "x') OR 1=1 --",
    "{project:UInt64}",
    "%(name)s %s %",
    "ünïcödé ✓",
    "`backtick`",
    "/* comment */ -- more",
]


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[ClickHouseServer]:
    server = ClickHouseServer().start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
async def ch(clickhouse_server: ClickHouseServer) -> AsyncIterator[ClickHouse]:
    client = await connect(clickhouse_server.url + "?pool_min_size=1&pool_max_size=4")
    await client.execute(
        "CREATE TABLE wire (uuid String, project_id UInt64, event String, timestamp DateTime, n Float64)"
        " ENGINE = MergeTree ORDER BY (project_id, uuid)"
    )
    yield client
    await client.close()


def wire_rows(n: int, project_id: int, events: list[str] | None = None) -> list[tuple[Any, ...]]:
    names = events or ["$pageview", "signup", "purchase"]
    return [
        (str(uuid.uuid4()), project_id, names[i % len(names)], BASE + timedelta(seconds=i), i / 4)
        for i in range(n)
    ]


async def count(ch: ClickHouse, project_id: int) -> int:
    [row] = await ch.query("SELECT count() AS n FROM wire WHERE project_id = {p:UInt64}", {"p": project_id})
    return int(row["n"])


async def test_batch_insert_of_100k_rows_is_all_counted(ch: ClickHouse) -> None:
    rows = wire_rows(100_000, project_id=1)
    await ch.insert("wire", COLUMNS, rows)
    [summary] = await ch.query(
        "SELECT count() AS rows, uniqExact(uuid) AS uuids, min(timestamp) AS first, sum(n) AS total"
        " FROM wire WHERE project_id = 1"
    )
    assert summary == {
        "rows": 100_000,
        "uuids": 100_000,
        "first": "2024-05-01 00:00:00",
        "total": sum(r[4] for r in rows),
    }
    orjson.dumps(summary)


async def test_hostile_param_values_come_back_as_data(ch: ClickHouse) -> None:
    await ch.insert("wire", COLUMNS, wire_rows(len(HOSTILE) * 2, project_id=2, events=HOSTILE))
    for value in HOSTILE:
        found = await ch.query(
            "SELECT event, count() AS n FROM wire"
            " WHERE project_id = {project:UInt64} AND event = {event:String} GROUP BY event",
            {"project": 2, "event": value},
        )
        assert found == [{"event": value, "n": 2}]
    echoed = await ch.query(
        "SELECT {v:String} AS v, {a:Array(String)} AS a, {none:Nullable(String)} AS none,"
        " '100%' AS literal, 7 % 3 AS modulo, '{project:UInt64}' AS not_a_placeholder",
        {"v": HOSTILE[4], "a": HOSTILE, "none": None},
    )
    assert echoed == [
        {
            "v": HOSTILE[4],
            "a": HOSTILE,
            "none": None,
            "literal": "100%",
            "modulo": 1,
            "not_a_placeholder": "{project:UInt64}",
        }
    ]
    assert await count(ch, 1) == 100_000  # the table survived


async def test_typed_params_bind_numbers_and_instants(ch: ClickHouse) -> None:
    await ch.insert("wire", COLUMNS, wire_rows(10, project_id=3))
    since = (BASE + timedelta(seconds=4)).astimezone(timezone(timedelta(hours=-5)))  # the same instant
    found = await ch.query(
        "SELECT count() AS rows, max(timestamp) AS last FROM wire"
        " WHERE project_id = {p:UInt64} AND timestamp >= {since:DateTime} AND n < {below:Float64}",
        {"p": 3, "since": since, "below": 2.0},
    )
    assert found == [{"rows": 4, "last": "2024-05-01 00:00:07"}]  # seconds 4..7: n = 1.0 .. 1.75
    limited = await ch.query("SELECT uuid FROM wire WHERE project_id = 3 LIMIT {k:UInt32}", {"k": 3})
    assert len(limited) == 3
    big = await ch.query("SELECT {u:UInt64} AS u, {i:Int64} AS i", {"u": 2**64 - 1, "i": -(2**63)})
    assert big == [{"u": 2**64 - 1, "i": -(2**63)}]
    arrays = await ch.query(
        "SELECT {ints:Array(Int64)} AS ints, {days:Array(Date)} AS days, {times:Array(DateTime)} AS times",
        {"ints": [-1, 2], "days": [BASE.date()], "times": [since]},
    )
    assert arrays == [{"ints": [-1, 2], "days": ["2024-05-01"], "times": ["2024-05-01 00:00:04"]}]


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELEC 1", 62),
        ("SELECT * FROM no_such_table", 60),
        ("SELECT no_such_column FROM wire", 47),
        ("SELECT 1; SELECT 2", 62),
        ("SELECT {missing:String}", 456),
    ],
)
async def test_bad_sql_raises_clickhouse_error_with_its_code(ch: ClickHouse, sql: str, code: int) -> None:
    with pytest.raises(ClickHouseError) as error:
        await ch.query(sql)
    assert error.value.code == code
    assert await ch.query("SELECT 1 AS ok") == [{"ok": 1}]  # the pool is healthy afterwards


async def test_failed_inserts_raise_clickhouse_error_and_write_nothing(ch: ClickHouse) -> None:
    with pytest.raises(ClickHouseError) as missing:
        await ch.insert("no_such_table", COLUMNS, wire_rows(3, project_id=4))
    assert missing.value.code == 60
    with pytest.raises(ClickHouseError):
        await ch.insert("wire", COLUMNS, [(str(uuid.uuid4()), "not a number", "e", BASE, 1.0)])
    with pytest.raises(ClickHouseError):
        await ch.insert("wire", ("uuid", "no_such_column"), [("u", 1)])
    assert await count(ch, 4) == 0


async def test_readonly_setting_refuses_writes(ch: ClickHouse) -> None:
    limits = {"readonly": 1, "max_execution_time": 5, "max_result_rows": 10, "result_overflow_mode": "break"}
    with pytest.raises(ClickHouseError) as refused:
        await ch.query("INSERT INTO wire (uuid, project_id) SELECT 'x', 5", settings=limits)
    assert refused.value.code == 164
    with pytest.raises(ClickHouseError):
        await ch.query("DROP TABLE wire", settings=limits)
    assert await ch.query("SELECT number FROM system.numbers LIMIT 3", settings=limits) == [
        {"number": 0},
        {"number": 1},
        {"number": 2},
    ]
    assert await count(ch, 5) == 0


async def test_connect_to_a_port_where_nothing_listens_is_unavailable() -> None:
    with pytest.raises(ClickHouseUnavailable):
        await connect(f"clickhouse://default@127.0.0.1:{free_port()}/default")


async def test_server_restart_is_unavailable_then_the_same_client_reconnects(
    ch: ClickHouse, clickhouse_server: ClickHouseServer
) -> None:
    first = wire_rows(1000, project_id=6)
    await ch.insert("wire", COLUMNS, first)

    clickhouse_server.stop()
    try:
        with pytest.raises(ClickHouseUnavailable):
            await ch.insert("wire", COLUMNS, wire_rows(10, project_id=6))
        with pytest.raises(ClickHouseUnavailable):
            await ch.query("SELECT 1")
    finally:
        clickhouse_server.start()

    second = wire_rows(500, project_id=6)
    await ch.insert("wire", COLUMNS, second)  # the same client instance, reconnected
    stored = await ch.query("SELECT uuid FROM wire WHERE project_id = 6")
    assert {r["uuid"] for r in stored} == {r[0] for r in first + second}
    assert await count(ch, 1) == 100_000  # earlier data survived the restart

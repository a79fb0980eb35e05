"""The chDB backend of workers.clickhouse on the product's own schema (sql/clickhouse), in a temp directory."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from workers.clickhouse import ClickHouse, ClickHouseError, ClickHouseUnavailable, connect
from workers.migrate import migrate_clickhouse
from workers.query.api import readonly_sql
from workers.writer import EVENT_COLUMNS

pytestmark = pytest.mark.clickhouse

HOSTILE = [
    "it's",
    'say "hi"',
    "back\\slash \\N \\n",
    "tab\there\nnew line\r",
    "'; DROP TABLE events; --",
    "x') OR 1=1 --",
    "{project:UInt64}",
    "%(name)s %s %",
    "ünïcödé ✓",
    "`backtick`",
    "/* comment */ -- more",
]
BASE = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="module")
async def ch(chdb_path: Path) -> AsyncIterator[ClickHouse]:
    # one chDB directory per process: the client is closed at the end of the module so that another module
    # may open its own directory
    client = await connect(f"chdb://{chdb_path}")
    await migrate_clickhouse(client)
    yield client
    await client.close()


def event_rows(n: int, project_id: int, distinct_ids: list[str] | None = None) -> list[tuple[Any, ...]]:
    """Rows in writer.EVENT_COLUMNS order, as the writer builds them (uuid strings, aware datetimes)."""
    rows = []
    for i in range(n):
        timestamp = BASE + timedelta(seconds=i, microseconds=i % 1000)
        distinct_id = distinct_ids[i % len(distinct_ids)] if distinct_ids else f"user-{i % 100}"
        rows.append(
            (
                str(uuid.uuid4()),
                project_id,
                ("$pageview", "signup", "purchase")[i % 3],
                distinct_id,
                str(uuid.uuid4()),
                "{}",
                timestamp,
                orjson.dumps({"i": i, "path": f"/p/{i}", "note": distinct_id}).decode(),
                "",
                "",
                "127.0.0.1",
                "web",
                "posthog",
                None if i % 2 else timestamp - timedelta(milliseconds=5),
                timestamp + timedelta(milliseconds=20),
            )
        )
    return rows


async def test_inserted_batch_comes_back_and_hostile_params_are_data(ch: ClickHouse) -> None:
    rows = event_rows(300, project_id=1, distinct_ids=HOSTILE)
    await ch.insert("events", EVENT_COLUMNS, rows)

    for value in HOSTILE:
        found = await ch.query(
            "SELECT distinct_id, count() AS n FROM events"
            " WHERE project_id = {project:UInt64} AND distinct_id = {id:String} GROUP BY distinct_id",
            {"project": 1, "id": value},
        )
        assert found == [{"distinct_id": value, "n": sum(1 for r in rows if r[3] == value)}]
    echoed = await ch.query("SELECT {v:String} AS v, {a:Array(String)} AS a", {"v": HOSTILE[4], "a": HOSTILE})
    assert echoed == [{"v": HOSTILE[4], "a": HOSTILE}]
    assert (await ch.query("SELECT count() AS n FROM events WHERE project_id = 1"))[0]["n"] == 300


async def test_values_come_back_json_ready(ch: ClickHouse) -> None:
    [row] = event_rows(1, project_id=2)
    await ch.insert("events", EVENT_COLUMNS, [row])
    [got] = await ch.query(
        "SELECT uuid, project_id, timestamp, sent_at, properties, toUInt64(18446744073709551615) AS big"
        " FROM events WHERE uuid = {uuid:UUID}",
        {"uuid": row[0]},
    )
    assert got == {
        "uuid": row[0],
        "project_id": 2,
        "timestamp": row[6].strftime("%Y-%m-%d %H:%M:%S.%f"),
        "sent_at": row[13].strftime("%Y-%m-%d %H:%M:%S.%f"),
        "properties": row[7],
        "big": 2**64 - 1,
    }
    orjson.dumps(got)


async def test_datetime_params_are_instants_whatever_their_zone(ch: ClickHouse) -> None:
    rows = event_rows(10, project_id=3)
    await ch.insert("events", EVENT_COLUMNS, rows)
    plus_two = timezone(timedelta(hours=2))
    since = (BASE + timedelta(seconds=5)).astimezone(plus_two)  # the same instant, written in UTC+2
    found = await ch.query(
        "SELECT count() AS n FROM events WHERE project_id = {p:UInt64} AND timestamp >= {since:DateTime64(6, 'UTC')}",
        {"p": 3, "since": since},
    )
    assert found == [{"n": 5}]
    arrays = await ch.query(
        "SELECT {ints:Array(Int64)} AS ints, {days:Array(Date)} AS days,"
        " {times:Array(DateTime('Asia/Tokyo'))} AS times, toUnixTimestamp(times[1]) AS unix",
        {"ints": [-1, 2], "days": [BASE.date()], "times": [since]},
    )
    assert arrays == [
        {
            "ints": [-1, 2],
            "days": ["2024-05-01"],
            "times": ["2024-05-01 09:00:05"],
            "unix": int(since.timestamp()),
        }
    ]


async def test_same_batch_inserted_twice_leaves_one_row_per_uuid_after_final(ch: ClickHouse) -> None:
    rows = event_rows(1000, project_id=4)
    await ch.insert("events", EVENT_COLUMNS, rows)
    await ch.insert("events", EVENT_COLUMNS, rows)  # a redelivered batch

    [stored] = await ch.query("SELECT count() AS n FROM events WHERE project_id = 4")
    [final] = await ch.query(
        "SELECT count() AS n, uniqExact(uuid) AS uuids FROM events FINAL WHERE project_id = {p:UInt64}",
        {"p": 4},
    )
    assert stored["n"] in (1000, 2000)  # before or after a background merge
    assert final == {"n": 1000, "uuids": 1000}


async def test_insert_counts_rows_and_time_in_metrics(ch: ClickHouse) -> None:
    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"table": "events"}) or 0.0

    rows_before, inserts_before = (
        sample("ua_clickhouse_inserted_rows_total"),
        sample("ua_clickhouse_insert_seconds_count"),
    )
    await ch.insert("events", EVENT_COLUMNS, event_rows(25, project_id=5))
    assert sample("ua_clickhouse_inserted_rows_total") == rows_before + 25
    assert sample("ua_clickhouse_insert_seconds_count") == inserts_before + 1


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELEC 1", 62),
        ("SELECT * FROM no_such_table", 60),
        ("SELECT no_such_column FROM events", 47),
        ("SELECT 1; SELECT 2", 62),
        ("SELECT {missing:String}", 456),
    ],
)
async def test_bad_sql_raises_clickhouse_error_with_its_code(ch: ClickHouse, sql: str, code: int) -> None:
    with pytest.raises(ClickHouseError) as error:
        await ch.query(sql)
    assert error.value.code == code


async def test_insert_of_bad_rows_raises_clickhouse_error(ch: ClickHouse) -> None:
    with pytest.raises(ClickHouseError) as missing:
        await ch.insert("no_such_table", ["a"], [(1,)])
    assert missing.value.code == 60
    with pytest.raises(ClickHouseError):
        await ch.insert("events", ["uuid", "project_id"], [("not-a-uuid", 1)])
    with pytest.raises(ClickHouseError):
        await ch.insert("events", ["uuid", "project_id"], [(str(uuid.uuid4()),)])  # a short row
    with pytest.raises(ClickHouseError) as bad_sql:
        await ch.execute("CREATE TABLE broken (")
    assert bad_sql.value.code == 62


async def test_queries_run_while_an_insert_is_in_progress(ch: ClickHouse) -> None:
    rows = event_rows(200_000, project_id=6)
    insert = asyncio.create_task(ch.insert("events", EVENT_COLUMNS, rows))
    await asyncio.sleep(0.05)  # the insert holds the writer session now
    answered_during_insert = 0
    while not insert.done():
        [row] = await ch.query("SELECT count() AS n FROM events WHERE project_id = {p:UInt64}", {"p": 6})
        assert row["n"] in (0, 200_000)  # an insert block is atomic
        answered_during_insert += not insert.done()
    await insert
    assert answered_during_insert > 0
    assert await ch.query("SELECT count() AS n FROM events WHERE project_id = 6") == [{"n": 200_000}]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO events (uuid, project_id) SELECT generateUUIDv4(), 7",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "CREATE TABLE sneaky (a UInt8) ENGINE = Memory",
        # a second statement smuggled past the read-only wrapper would run without the trailing SETTINGS
        "SELECT 1) ; DROP TABLE events; SELECT * FROM (SELECT 1",
    ],
)
async def test_readonly_settings_refuse_writes_and_file_access(ch: ClickHouse, statement: str) -> None:
    limits = {"readonly": 1, "max_execution_time": 5, "max_result_rows": 11, "result_overflow_mode": "break"}
    with pytest.raises(ClickHouseError):
        await ch.query(readonly_sql(statement, 10), settings=limits)
    assert await ch.query("EXISTS TABLE events") == [{"result": 1}]
    assert await ch.query("SELECT count() AS n FROM events WHERE project_id = 7") == [{"n": 0}]
    # the settings covered that one statement only
    assert await ch.query(readonly_sql("SELECT 1 AS one", 10), settings=limits) == [{"one": 1}]


async def test_a_second_process_cannot_open_the_directory(ch: ClickHouse, chdb_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from workers.clickhouse import ClickHouseUnavailable, connect\n"
        "try:\n"
        f"    asyncio.run(connect('chdb://{chdb_path}'))\n"
        "except ClickHouseUnavailable as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert "in use by another process" in done.stdout


async def test_closed_client_raises_unavailable(chdb_path: Path, ch: ClickHouse) -> None:
    other = await connect(f"chdb://{chdb_path}?readers=1")  # the same directory: a second client in-process
    assert await other.query("SELECT count() > 0 AS some FROM events") == [{"some": 1}]
    await other.close()
    with pytest.raises(ClickHouseUnavailable):
        await other.query("SELECT 1")
    assert await ch.query("SELECT 1 AS one") == [{"one": 1}]  # the first client is unaffected

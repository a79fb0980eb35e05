"""The tests' own Postgres cluster: a database on it survives a restart and a crash."""

from __future__ import annotations

import asyncpg
import pytest

from tests.components import PostgresCluster

pytestmark = [pytest.mark.faults, pytest.mark.postgres]


async def test_a_cluster_restarts_on_its_port_with_its_data(postgres_cluster: PostgresCluster) -> None:
    dsn = await postgres_cluster.create_database()
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1)")

    postgres_cluster.restart()
    # fast: the clients are disconnected
    with pytest.raises(asyncpg.ConnectionDoesNotExistError, match="due to administrator command"):
        await conn.fetchval("SELECT 1")
    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO t VALUES (2)")
    await conn.close()

    postgres_cluster.restart("immediate")  # a crash: recovery at start
    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval("SELECT array_agg(n ORDER BY n) FROM t") == [1, 2]
    await conn.close()

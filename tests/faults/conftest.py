"""Each fault test gets components of its own: the faults leave topics, groups and databases odd."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.components import PostgresCluster, Tansu, create_database, drop_database


@pytest.fixture
def broker() -> Iterator[Tansu]:
    tansu = Tansu().start()
    yield tansu
    tansu.stop()


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    """A database on the machine's Postgres (never restarted: restart a postgres_cluster)."""
    database = await create_database()
    yield database
    await drop_database(database)


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    yield cluster
    cluster.remove()

"""Each fault test gets components of its own: the faults leave topics, groups and databases odd."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.components import PostgresCluster


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    yield cluster
    cluster.remove()

"""One world for the analytics package (package scope: chDB opens one directory per process, so it is
closed before the other packages open theirs): two projects' generated events in one chDB, the real API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.generate import Dataset, generate, insert
from tests.analytics.support import ADMIN, TZ_A, Side, World
from tests.reference import Events
from workers.clickhouse import connect
from workers.migrate import migrate_clickhouse
from workers.projects import ensure_project
from workers.query.api import create_app
from workers.settings import Settings


def _distinct_rows(data: Dataset) -> dict[str, int]:
    return {
        "events": len(data.events.drop_duplicates(["project_id", "uuid"])),
        "persons": len(data.persons.drop_duplicates(["project_id", "id"])),
        "person_distinct_ids": len(data.person_distinct_ids.drop_duplicates(["project_id", "distinct_id"])),
    }


@pytest.fixture(scope="package")
async def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """Project A (America/New_York, 3000 users) and B (UTC, 1500 users; both use the ids user-0...):
    ~115k stored events in all, inserted in chunks (duplicate sends and late events in later chunks)."""
    ch = await connect(f"chdb://{tmp_path_factory.mktemp('analytics')}/chdb")
    await migrate_clickhouse(ch)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    a = await ensure_project(pool, "analytics-a", api_token=f"aa-{uuid.uuid4().hex}", timezone=TZ_A)
    b = await ensure_project(pool, "analytics-b", api_token=f"ab-{uuid.uuid4().hex}")
    await pool.close()
    data_a = generate(
        11, a.id, persons=3000, days=24, events=75_000, start=datetime(2026, 10, 19, 4, tzinfo=UTC)
    )
    data_b = generate(12, b.id, persons=1500, days=24, events=35_000, start=datetime(2026, 10, 19, tzinfo=UTC),
                      extra_event="invited_friend")  # fmt: skip
    both = Dataset.concat(data_a, data_b)
    await insert(ch, both, chunk_rows=25_000, time_zones={a.id: a.timezone, b.id: b.timezone})
    yield World(ch, Side(a, data_a, Events(both, a.id, a.timezone)), Side(b, data_b, Events(data_b, b.id, "UTC")),
                _distinct_rows(both))  # fmt: skip
    await ch.close()


@pytest.fixture(scope="package")
async def client(
    world: World, pg_dsn: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[TestClient]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    settings = make_settings(admin_api_key=ADMIN)
    async with TestClient(TestServer(create_app(settings, world.ch, pool))) as test_client:
        yield test_client
    await pool.close()

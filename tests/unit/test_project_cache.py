"""The project cache keeps capture answering for known projects while Postgres is down."""

from __future__ import annotations

import pytest

from workers.projects import Project, ProjectCache

PROJECT = Project(7, "shop", "tok", "key", "UTC")


class FlakyPool:
    def __init__(self) -> None:
        self.down = False
        self.queries = 0

    async def fetchrow(self, sql: str, value: str) -> dict[str, object] | None:
        self.queries += 1
        if self.down:
            raise ConnectionRefusedError("postgres is down")
        return (
            {"id": 7, "name": "shop", "api_token": "tok", "api_key": "key", "timezone": "UTC"}
            if value == "tok"
            else None
        )


async def test_an_expired_known_project_is_used_while_postgres_is_down_and_a_new_token_waits() -> None:
    pool = FlakyPool()
    cache = ProjectCache(pool, ttl_seconds=0)  # type: ignore[arg-type]
    assert await cache.by_token("tok") == PROJECT
    assert await cache.by_token("nope") is None
    pool.down = True
    assert await cache.by_token("tok") == PROJECT  # expired, asked again, Postgres down: the last answer
    with pytest.raises(ConnectionRefusedError):
        await cache.by_token("nope")  # a miss is not kept through an outage: it could be a new project
    with pytest.raises(ConnectionRefusedError):
        await cache.by_token("new")
    assert pool.queries == 5

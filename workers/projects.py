"""Projects: token -> project (cached, refreshed), created through `admin` or `make up`."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    api_token: str
    api_key: str
    timezone: str
    # issue 10: limits (capture's rate limits; None = the CAPTURE_* default)
    events_per_second: float | None = None
    events_burst: int | None = None
    distinct_id_events_per_second: float | None = None
    distinct_id_burst: int | None = None


_COLUMNS = (
    "id, name, api_token, api_key, timezone,"
    " events_per_second, events_burst, distinct_id_events_per_second, distinct_id_burst"
)


class ProjectCache:
    """Looks projects up by capture token or API key; answers (and misses) are kept `ttl` seconds. While
    Postgres cannot be reached, a known project's expired answer is still used: capture keeps taking the
    events of every project it has seen, and only an unseen token waits for Postgres (503)."""

    def __init__(self, pool: asyncpg.Pool, ttl_seconds: float) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._by_token: dict[str, tuple[float, Project | None]] = {}
        self._by_key: dict[str, tuple[float, Project | None]] = {}

    async def by_token(self, token: str) -> Project | None:
        return await self._lookup(self._by_token, "api_token", token)

    async def by_api_key(self, key: str) -> Project | None:
        return await self._lookup(self._by_key, "api_key", key)

    async def _lookup(
        self, cache: dict[str, tuple[float, Project | None]], column: str, value: str
    ) -> Project | None:
        now = time.monotonic()
        hit = cache.get(value)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        try:
            row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM projects WHERE {column} = $1", value)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if hit is not None and hit[1] is not None:
                return hit[1]
            raise
        project = Project(**dict(row)) if row else None
        if len(cache) > 100_000:  # a flood of bad tokens must not grow memory without bound
            cache.clear()
        cache[value] = (now, project)
        return project


async def ensure_project(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    api_token: str | None = None,
    api_key: str | None = None,
    timezone: str = "UTC",
) -> Project:
    """Create a project (or return the one that already has this token)."""
    api_token = api_token or "phc_" + secrets.token_urlsafe(24)
    api_key = api_key or "phx_" + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"""INSERT INTO projects (name, api_token, api_key, timezone) VALUES ($1, $2, $3, $4)
            ON CONFLICT (api_token) DO UPDATE SET api_token = EXCLUDED.api_token
            RETURNING {_COLUMNS}""",
        name,
        api_token,
        api_key,
        timezone,
    )
    return Project(**dict(row))

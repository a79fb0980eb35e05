"""What the analytics tests share: the world they query, requests to the API, and comparing answers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from bench.generate import Dataset
from tests.reference import Events
from workers.clickhouse import ClickHouse
from workers.projects import Project

TZ_A = "America/New_York"  # daylight saving time ends on 2026-11-01, inside A's ranges
ADMIN = "analytics-admin-key"
RANGE_A = {"date_from": "2026-10-26", "date_to": "2026-11-08"}  # two ISO weeks around the DST change
RANGE_B = {"date_from": "2026-10-22", "date_to": "2026-11-04"}
ENDPOINTS = ("/api/trends", "/api/funnels", "/api/retention", "/api/sessions", "/api/paths")


@dataclass(frozen=True)
class Side:
    """One project: its row in Postgres, the rows generated for it, and the reference over them."""

    project: Project
    data: Dataset
    ref: Events

    @property
    def key(self) -> str:
        return self.project.api_key


@dataclass(frozen=True)
class World:
    ch: ClickHouse
    a: Side  # America/New_York; its reference is computed from both projects' rows concatenated
    b: Side  # UTC, fewer persons; its reference from its own rows only; has the event "invited_friend"
    stored: dict[str, int]  # rows each table holds once deduplicated (FINAL), both projects


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post(client: TestClient, path: str, key: str, body: Any, refresh: bool = True) -> tuple[int, Any]:
    """POST a request; `refresh` skips the result cache so every answer is computed by the SQL."""
    if refresh and isinstance(body, dict):
        body = {**body, "refresh": True}
    response = await client.post(path, json=body, headers=auth(key))
    return response.status, await response.json()


async def get(client: TestClient, path: str, key: str, params: dict[str, str]) -> tuple[int, Any]:
    response = await client.get(path, params=params, headers=auth(key))
    return response.status, await response.json()


async def all_pages(client: TestClient, path: str, key: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every event of a paged listing, following `next_cursor`."""
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        status, answer = await get(client, path, key, {**params, **({"cursor": cursor} if cursor else {})})
        assert status == 200, answer
        events += answer["events"]
        cursor = answer["next_cursor"]
        if cursor is None:
            return events


def assert_same(got: Any, want: Any, where: str = "answer") -> None:
    """Equal, except that numbers where either side is a float may differ by 1e-6."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {got!r} != {want!r}"
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list), f"{where}: {got!r} is not a list"
        assert len(got) == len(want), f"{where}: {len(got)} items != {len(want)}: {got!r} != {want!r}"
        for n, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{n}]")
    elif isinstance(want, float) or isinstance(got, float):
        ok = isinstance(got, int | float) and math.isclose(got, want, rel_tol=0, abs_tol=1e-6 + 1e-12)
        assert ok, f"{where}: {got!r} != {want!r}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"

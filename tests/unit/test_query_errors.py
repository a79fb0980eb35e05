"""How the analytics handler answers ClickHouse's refusals: a valid request over the limits is a 503 that
says which limit, anything else ClickHouse refuses is a 400 (fakes: the handler's mapping only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.clickhouse import ClickHouseError, ClickHouseUnavailable
from workers.query.api import create_app
from workers.query.definitions import NAMES_SQL
from workers.settings import Settings

PROJECT = {"id": 7, "name": "p", "api_token": "tok", "api_key": "key", "timezone": "UTC"}
TRENDS = {"events": [{"event": "signed_up"}], "date_from": "2026-11-01", "date_to": "2026-11-02"}


class Pool:
    async def fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None:
        return PROJECT if args == ("key",) else None


class RefusingClickHouse:
    """Knows the event `signed_up`; every analytics statement fails with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def query(self, sql: str, params: Any = None, settings: Any = None) -> list[dict[str, Any]]:
        if sql == NAMES_SQL:
            return [{"kind": "event", "name": "signed_up"}]
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ClickHouseError("Code: 159. Timeout exceeded", 159), 503, "query_too_expensive"),
        (ClickHouseError("Code: 241. Memory limit exceeded", 241), 503, "query_too_expensive"),
        (ClickHouseError("Code: 62. Syntax error", 62), 400, "query_error"),
        (ClickHouseUnavailable("closed"), 503, "clickhouse_unavailable"),
    ],
)
async def test_clickhouse_refusals_become_specific_errors(error: Exception, status: int, code: str) -> None:
    app = create_app(Settings.from_env({}), RefusingClickHouse(error), Pool())  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/api/trends", json=TRENDS, headers={"Authorization": "Bearer key"})
        answer = await response.json()
    assert (response.status, answer["code"]) == (status, code), answer

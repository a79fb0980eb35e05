"""The live stream's own behaviour with fakes: ClickHouse down during a poll is an `event: error` message
and the stream goes on polling; a quiet stream sends keepalive comments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.clickhouse import ClickHouseUnavailable
from workers.query import live
from workers.query.api import create_app
from workers.settings import Settings

PROJECT = {"id": 7, "name": "p", "api_token": "tok", "api_key": "key", "timezone": "UTC"}


class Pool:
    async def fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None:
        return PROJECT if args == ("key",) else None


class ClickHouse:
    """Down for the first `down` polls, then up with no events."""

    def __init__(self, down: int) -> None:
        self.down, self.polls = down, 0

    async def query(self, sql: str, params: Any = None, settings: Any = None) -> list[dict[str, Any]]:
        self.polls += 1
        assert params["project_id"] == 7 and settings["readonly"] == 1
        if self.polls <= self.down:
            raise ClickHouseUnavailable("connection refused")
        return []


async def lines(client: TestClient, count: int) -> list[str]:
    response = await client.get("/api/live", headers={"Authorization": "Bearer key"})
    assert response.status == 200
    read = [(await response.content.readline()).decode() for _ in range(count)]
    response.close()
    return read


async def test_clickhouse_down_is_an_error_message_and_polling_goes_on() -> None:
    ch = ClickHouse(down=2)
    app = create_app(Settings.from_env({"LIVE_POLL_SECONDS": "0.05"}), ch, Pool())  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        read = await lines(client, 6)
    assert read[0] == read[3] == "event: error\n" and read[2] == read[5] == "\n"
    assert orjson.loads(read[1].removeprefix("data: ")) == {
        "type": "error", "code": "clickhouse_unavailable", "detail": "connection refused"
    }  # fmt: skip
    assert ch.polls >= 2


async def test_a_quiet_stream_sends_keepalives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "KEEPALIVE_SECONDS", 0.1)
    app = create_app(Settings.from_env({"LIVE_POLL_SECONDS": "0.05"}), ClickHouse(down=0), Pool())  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        assert await lines(client, 4) == [": keepalive\n", "\n", ": keepalive\n", "\n"]

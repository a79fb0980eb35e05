"""Exports: every insight as CSV (the web app's table, numbers exactly the JSON's), and the events export
(NDJSON and CSV, chunk by chunk) equal to the reference's events of the range."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import orjson
import pandas as pd
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.generate import HOSTILE_EVENT, HOSTILE_PROPERTY
from tests import reference
from tests.analytics.support import ADMIN, RANGE_A, Side, World, assert_same, auth, post
from workers.query.api import create_app
from workers.settings import Settings

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
CHUNK_ROWS = 500
DAY = {"after": "2026-11-01T00:00:00Z", "before": "2026-11-02T05:00:00+00:00"}  # the DST change, ~4 chunks
PRO = [{"property": "plan", "op": "eq", "value": "pro"}]
COLUMNS = ["uuid", "event", "distinct_id", "person_id", "timestamp", "properties"]


def number(text: str) -> Any:
    """A CSV cell back as the JSON value it was written from (empty: null)."""
    return None if text == "" else orjson.loads(text)


async def json_and_csv(
    client: TestClient, side: Side, path: str, body: dict[str, Any]
) -> tuple[dict[str, Any], list[list[str]]]:
    """The JSON answer (computed afresh), then the CSV of the same request, rendered from the result cache."""
    status, answer = await post(client, path, side.key, body)
    assert status == 200, answer
    response = await client.post(path, json=body, headers={**auth(side.key), "Accept": "text/csv"})
    assert response.status == 200, await response.text()
    assert response.headers["X-Cache"] == "hit"
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{path.rsplit("/", 1)[1]}.csv"'
    text = await response.text()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    return answer, list(csv.reader(io.StringIO(text, newline="")))


TRENDS = [
    pytest.param({"events": [{"event": "$pageview"}, {"event": "purchase", "filters": PRO}], "measure": "totals",
                  "interval": "day", "breakdown": {"type": "event", "property": "amount", "limit": 4}},
                 id="two-series-breakdown-with-none"),
    pytest.param({"events": [{"event": HOSTILE_EVENT}], "measure": "average", "interval": "week",
                  "breakdown": {"type": "event", "property": HOSTILE_PROPERTY, "limit": 3}}, id="hostile-values"),
    pytest.param({"events": [{"event": "purchase"}, {"event": "signed_up"}], "measure": "distribution",
                  "property": "plan", "interval": "day"}, id="distribution-unaligned-labels"),
    pytest.param({"events": [{"event": "$pageview"}], "measure": "active_percent", "interval": "hour",
                  "date_from": "2026-11-01", "date_to": "2026-11-01"}, id="hours-across-dst"),
]  # fmt: skip


@pytest.mark.parametrize("body", TRENDS)
async def test_trends_csv_is_the_series_table(client: TestClient, world: World, body: dict[str, Any]) -> None:
    body = {**RANGE_A, **body}
    answer, rows = await json_and_csv(client, world.a, "/api/trends", body)
    assert_same(answer, reference.trends(world.a.ref, body))
    columns: list[str] = []
    for s in answer["series"]:
        columns += [label for label in s["labels"] if label not in columns]
    assert rows[0] == ["Series", *columns]
    assert len(rows) == 1 + len(answer["series"])
    for s, row in zip(answer["series"], rows[1:], strict=True):
        value = s["breakdown_value"]
        label = s["event"] if value is None else f"{s['event']} · {'(none)' if value == '' else value}"
        values = dict(zip(s["labels"], s["values"], strict=True))
        assert row[0] == label
        assert_same([number(cell) for cell in row[1:]], [values.get(c) for c in columns], where=label)
    if body.get("breakdown", {}).get("property") == "amount":  # missing on ~10% of events: the top value
        assert "$pageview · (none)" in [r[0] for r in rows]


STEPS = ["$pageview", "signed_up", "purchase"]
FUNNEL_COLUMNS = [
    "count",
    "conversion_from_first",
    "conversion_from_previous",
    "median_seconds_from_previous",
]


async def test_funnels_csv_has_every_step_then_every_breakdowns_steps(
    client: TestClient, world: World
) -> None:
    body = {"steps": [{"event": s} for s in STEPS], "window_seconds": 86400, **RANGE_A,
            "breakdown": {"type": "event", "property": "plan", "limit": 2}}  # fmt: skip
    answer, rows = await json_and_csv(client, world.a, "/api/funnels", body)
    assert_same(answer, reference.funnels(world.a.ref, body))
    assert len(answer["breakdowns"]) == 2
    assert rows[0] == ["Step", *FUNNEL_COLUMNS]
    want = [[f"{n}. {s['event']}", *(s[c] for c in FUNNEL_COLUMNS)] for n, s in enumerate(answer["steps"], 1)]
    for b in answer["breakdowns"]:
        want += [[f"{b['breakdown_value']} · {n}. {s['event']}", *(s[c] for c in FUNNEL_COLUMNS)]
                 for n, s in enumerate(b["steps"], 1)]  # fmt: skip
    assert len(rows) == 1 + len(want) == 1 + 3 * 3
    for row, line in zip(rows[1:], want, strict=True):
        assert row[0] == line[0]
        assert_same([number(cell) for cell in row[1:]], line[1:], where=line[0])
    assert rows[1][4] == "" and rows[2][4] != ""  # step 1 has no median: null is empty


async def test_retention_csv_is_a_row_per_cohort(client: TestClient, world: World) -> None:
    body = {"start_event": "signed_up", "return_event": "$any", "period": "day", "periods": 6, **RANGE_A}
    answer, rows = await json_and_csv(client, world.a, "/api/retention", body)
    assert_same(answer, reference.retention(world.a.ref, body))
    assert rows[0] == ["Cohort", "size", *map(str, range(7))]
    assert [r[0] for r in rows[1:]] == [c["date"] for c in answer["cohorts"]]
    assert_same(
        [[number(x) for x in r[1:]] for r in rows[1:]], [[c["size"], *c["values"]] for c in answer["cohorts"]]
    )


async def test_sessions_csv_is_a_row_per_measure(client: TestClient, world: World) -> None:
    body = {"interval": "day", **RANGE_A}
    answer, rows = await json_and_csv(client, world.a, "/api/sessions", body)
    assert_same(answer, reference.sessions(world.a.ref, body))
    assert rows[0] == ["Measure", *answer["labels"]]
    measures = ["sessions", "avg_duration_seconds", "bounce_rate"]
    assert [r[0] for r in rows[1:]] == measures
    assert_same([[number(x) for x in r[1:]] for r in rows[1:]], [answer[m] for m in measures])


async def test_paths_csv_is_a_row_per_edge(client: TestClient, world: World) -> None:
    body = {"start_event": "$pageview", "steps": 4, "limit": 30, **RANGE_A}
    answer, rows = await json_and_csv(client, world.a, "/api/paths", body)
    assert_same(answer, reference.paths(world.a.ref, body))
    assert rows[0] == ["Edge", "value"] and len(rows) == 31
    assert [r[0] for r in rows[1:]] == [f"{e['source']} → {e['target']}" for e in answer["edges"]]
    assert [number(r[1]) for r in rows[1:]] == [e["value"] for e in answer["edges"]]


async def test_stickiness_csv_is_a_row_per_series(client: TestClient, world: World) -> None:
    body = {
        "events": [{"event": "$pageview"}, {"event": "purchase", "filters": PRO}],
        "interval": "day",
        **RANGE_A,
    }
    answer, rows = await json_and_csv(client, world.a, "/api/stickiness", body)
    assert_same(answer, reference.stickiness(world.a.ref, body))
    assert rows[0] == ["Series", *answer["series"][0]["labels"]]
    assert [r[0] for r in rows[1:]] == ["$pageview", "purchase"]
    assert_same([[number(x) for x in r[1:]] for r in rows[1:]], [s["values"] for s in answer["series"]])


async def test_lifecycle_csv_is_a_row_per_status(client: TestClient, world: World) -> None:
    body = {"event": "$pageview", "interval": "week", **RANGE_A}
    answer, rows = await json_and_csv(client, world.a, "/api/lifecycle", body)
    assert_same(answer, reference.lifecycle(world.a.ref, body))
    statuses = ["new", "returning", "resurrecting", "dormant"]
    assert rows[0] == ["Status", *answer["labels"]]
    assert [r[0] for r in rows[1:]] == statuses
    assert_same([[number(x) for x in r[1:]] for r in rows[1:]], [answer[s] for s in statuses])


async def test_csv_errors_stay_json(client: TestClient, world: World) -> None:
    response = await client.post(
        "/api/trends", json={"events": []}, headers={**auth(world.a.key), "Accept": "text/csv"}
    )
    assert response.status == 400 and await response.json() == {
        "type": "error", "code": "invalid_request",
        "detail": "events: required, a non-empty list of {event, filters?}"}  # fmt: skip


# The events export -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def small_chunks(
    world: World, pg_dsn: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[TestClient]:
    """The API with chunks of CHUNK_ROWS stored rows, so an export of a day takes several."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    settings = make_settings(admin_api_key=ADMIN, events_export_chunk_rows=CHUNK_ROWS)
    async with TestClient(TestServer(create_app(settings, world.ch, pool))) as test_client:
        yield test_client
    await pool.close()


def exported(side: Side, params: dict[str, str]) -> list[dict[str, Any]]:
    """The reference's events of the range, oldest first (ties by uuid)."""
    return reference.events(
        side.ref, event=params.get("event"), filters=orjson.loads(params.get("filters", "[]")),
        after=pd.Timestamp(params["after"]).tz_convert("UTC"), before=pd.Timestamp(params["before"]).tz_convert("UTC"),
    )[::-1]  # fmt: skip


async def export(client: TestClient, key: str, params: dict[str, str], accept: str = "") -> tuple[str, str]:
    response = await client.get("/api/events", params=params, headers={**auth(key), "Accept": accept})
    assert response.status == 200, await response.text()
    return response.headers["Content-Type"], await response.text()


def ndjson(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n")
    return [orjson.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize(
    "params",
    [DAY, {**DAY, "event": "$pageview", "filters": orjson.dumps(PRO).decode()}],
    ids=["every-event", "event-and-filter"],
)
async def test_ndjson_export_is_every_event_of_the_range_once(
    small_chunks: TestClient, world: World, params: dict[str, str]
) -> None:
    content_type, text = await export(small_chunks, world.a.key, {**params, "format": "ndjson"})
    assert content_type == "application/x-ndjson; charset=utf-8"
    want = exported(world.a, params)
    assert len(want) > 2 * CHUNK_ROWS or "event" in params
    assert_same(ndjson(text), want)


async def test_the_accept_header_chooses_the_export(small_chunks: TestClient, world: World) -> None:
    _, text = await export(small_chunks, world.b.key, DAY, accept="application/x-ndjson")
    want = exported(world.b, DAY)
    assert len(want) > CHUNK_ROWS
    assert_same(ndjson(text), want)  # project B's key: B's events only


async def test_csv_export_is_every_event_of_the_range_once(small_chunks: TestClient, world: World) -> None:
    content_type, text = await export(small_chunks, world.a.key, DAY, accept="text/csv")
    assert content_type == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == COLUMNS
    events = [{**dict(zip(COLUMNS, r, strict=True)), "properties": orjson.loads(r[5])} for r in rows[1:]]
    assert_same(events, exported(world.a, DAY))


async def test_an_empty_range_is_only_the_header(small_chunks: TestClient, world: World) -> None:
    params = {"after": "2030-01-01T00:00:00Z", "before": "2030-01-02T00:00:00Z", "format": "csv"}
    _, text = await export(small_chunks, world.a.key, params)
    assert text == "uuid,event,distinct_id,person_id,timestamp,properties\r\n"


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"format": "ndjson", "after": DAY["after"]}, "before: required to export, an ISO-8601 time"),
        ({"format": "csv", "before": DAY["before"]}, "after: required to export, an ISO-8601 time"),
        ({"format": "xml", **DAY}, "format: 'xml' is not one of json, ndjson, csv"),
    ],
)
async def test_an_export_needs_both_ends_of_the_range(
    small_chunks: TestClient, world: World, params: dict[str, str], detail: str
) -> None:
    response = await small_chunks.get("/api/events", params=params, headers=auth(world.a.key))
    assert response.status == 400
    assert await response.json() == {"type": "error", "code": "invalid_request", "detail": detail}

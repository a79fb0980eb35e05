"""The events listing and a person's profile: newest first, each event once, every page, as the reference."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pandas as pd
import pytest
from aiohttp.test_utils import TestClient

from tests import reference
from tests.analytics.support import Side, World, all_pages, assert_same, get
from workers.projects import ensure_project
from workers.writer import EVENT_COLUMNS

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]
PRO = [{"property": "plan", "op": "eq", "value": "pro"}]
SAFARI = [{"property": "$browser", "op": "eq", "value": "Safari"}]
DST_HOURS = {"after": "2026-11-01T05:00:00Z", "before": "2026-11-01T07:00:00+00:00"}


def expected(side: Side, params: dict[str, str]) -> list[dict[str, Any]]:
    def instant(name: str) -> pd.Timestamp | None:
        return pd.Timestamp(params[name]).tz_convert("UTC") if name in params else None

    return reference.events(
        side.ref, event=params.get("event"), filters=orjson.loads(params.get("filters", "[]")),
        distinct_ids=[params["distinct_id"]] if "distinct_id" in params else None,
        after=instant("after"), before=instant("before"),
    )  # fmt: skip


@pytest.mark.parametrize(
    "params",
    [
        {"event": "purchase", "filters": orjson.dumps(PRO).decode(), "limit": "37"},
        {"distinct_id": "user-", "limit": "25"},
        {"distinct_id": "anon-", "limit": "1000"},
        {**DST_HOURS, "limit": "500"},
        {"event": "$pageview", "filters": orjson.dumps(SAFARI).decode(), **DST_HOURS, "limit": "7"},
    ],
    ids=["event-and-filter", "distinct-id", "anonymous-id", "time-window", "hot-filter-and-window"],
)
async def test_every_page_together_is_the_listing(
    client: TestClient, world: World, params: dict[str, str]
) -> None:
    if "distinct_id" in params:  # the busiest distinct id of that kind
        ids = world.a.ref.frame["distinct_id"]
        params = {
            **params,
            "distinct_id": ids[ids.str.startswith(params["distinct_id"])].value_counts().index[0],
        }
    events = await all_pages(client, "/api/events", world.a.key, params)
    want = expected(world.a, params)
    assert want, "the listing is not empty"
    assert_same(events, want)


async def test_a_page_is_the_newest_events_with_a_cursor_to_the_next(
    client: TestClient, world: World
) -> None:
    status, answer = await get(client, "/api/events", world.a.key, {"limit": "5"})
    assert status == 200, answer
    want = expected(world.a, {})
    assert_same(answer["events"], want[:5])
    assert answer["next_cursor"] == f"{want[4]['timestamp']}|{want[4]['uuid']}"
    status, second = await get(
        client, "/api/events", world.a.key, {"limit": "5", "cursor": answer["next_cursor"]}
    )
    assert status == 200 and second["events"] == want[5:10]


@pytest.fixture(scope="module")
async def merged_person(world: World, pg_dsn: str) -> tuple[str, list[str], dict[str, Any]]:
    """A person of project A that another user was merged into and that browsed anonymously first, as the
    persons worker keeps it in Postgres: (person id, its distinct ids, its properties)."""
    ids = world.a.data.person_distinct_ids
    current = ids.sort_values("version").drop_duplicates("distinct_id", keep="last")
    moved = current[current["distinct_id"].str.startswith("user-") & current["version"].eq(1)]
    owners = current.groupby("person_id")["distinct_id"].agg(sorted)
    busy = world.a.ref.frame["person"].value_counts()
    candidates = [p for p in moved["person_id"] if any(d.startswith("anon-") for d in owners[p])]
    person = max(candidates, key=lambda p: busy.get(p, 0))
    rows = world.a.data.persons
    properties = orjson.loads(rows[rows["id"] == person].sort_values("version")["properties"].iloc[-1])
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "INSERT INTO persons (id, project_id, properties, is_identified, version) VALUES ($1, $2, $3, true, 2)",
            uuid.UUID(person), world.a.project.id, orjson.dumps(properties).decode(),
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO person_distinct_ids (project_id, distinct_id, person_id, version) VALUES ($1, $2, $3, 1)",
            [(world.a.project.id, d, uuid.UUID(person)) for d in owners[person]],
        )
    finally:
        await conn.close()
    return person, owners[person], properties


async def test_person_profile_has_every_distinct_id_and_their_events(
    client: TestClient, world: World, merged_person: tuple[str, list[str], dict[str, Any]]
) -> None:
    person, distinct_ids, properties = merged_person
    path = f"/api/persons/{distinct_ids[-1]}"
    status, answer = await get(client, path, world.a.key, {"limit": "20"})
    assert status == 200, answer
    assert answer["id"] == person and sorted(answer["distinct_ids"]) == distinct_ids
    assert answer["properties"] == properties and answer["is_identified"] is True and answer["version"] == 2
    want = reference.events(world.a.ref, distinct_ids=distinct_ids)
    assert len(want) > 20, "the events take more than one page"
    assert_same(answer["events"], want[:20])
    rest = await all_pages(client, path, world.a.key, {"limit": "20", "cursor": answer["next_cursor"]})
    assert_same(answer["events"] + rest, want)


@pytest.mark.parametrize("distinct_id", ["nobody", "device-1", "user-1"])
async def test_a_distinct_id_without_a_person_in_postgres_is_404(
    client: TestClient, world: World, merged_person: Any, distinct_id: str
) -> None:
    status, answer = await get(client, f"/api/persons/{distinct_id}", world.a.key, {})
    assert status == 404 and answer["code"] == "person_not_found", answer


async def test_another_projects_person_is_invisible(
    client: TestClient, world: World, merged_person: tuple[str, list[str], dict[str, Any]]
) -> None:
    _, distinct_ids, _ = merged_person
    status, answer = await get(client, f"/api/persons/{distinct_ids[0]}", world.b.key, {})
    assert status == 404, answer


async def test_a_page_reads_on_past_many_copies_of_a_redelivered_event(
    client: TestClient, world: World, pg_dsn: str
) -> None:
    """The newest event stored ten times fills the first read of a one-event page with copies: the page
    still holds one event of each uuid and the cursor leads to the older event."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    project = await ensure_project(pool, "copies", api_token=f"copies-{uuid.uuid4().hex}")
    await pool.close()
    now = datetime.now(UTC).replace(tzinfo=None)
    newest, older = str(uuid.uuid4()), str(uuid.uuid4())

    def row(event_uuid: str, when: datetime) -> tuple[Any, ...]:
        return (event_uuid, project.id, "$pageview", "d", str(uuid.uuid4()), "{}", when, "{}", "", "", "",
                "web", "posthog", None, when)  # fmt: skip

    await world.ch.insert(
        "events", EVENT_COLUMNS, [row(newest, now)] * 10 + [row(older, now - timedelta(hours=1))]
    )
    status, first = await get(client, "/api/events", project.api_key, {"limit": "1"})
    assert status == 200 and [e["uuid"] for e in first["events"]] == [newest] and first["next_cursor"], first
    status, second = await get(
        client, "/api/events", project.api_key, {"limit": "1", "cursor": first["next_cursor"]}
    )
    assert (
        status == 200 and [e["uuid"] for e in second["events"]] == [older] and second["next_cursor"] is None
    )

"""The writer's Flink topics on chDB: sessions, event_counts_1m and its hour and day rollups, late_events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from workers.clickhouse import ClickHouse, connect
from workers.kafka import EVENT_COUNTS_1M, LATE_EVENTS, SESSIONS, Message
from workers.metrics import WRITER_LATE_EVENTS
from workers.migrate import migrate_clickhouse
from workers.projects import ensure_project
from workers.results import DeadLetter, Ok
from workers.sanitize import Limits
from workers.writer import ProjectZones, TablesSink, load_time_zones, make_to_rows

pytestmark = pytest.mark.clickhouse
LIMITS = Limits(64, 10_000, 1024)
ZONES = {1: "UTC", 2: "Asia/Kolkata", 3: "America/New_York"}
PEOPLE = [str(uuid.UUID(int=n)) for n in range(1, 6)]
# 2026-10-31 03:00Z to 2026-11-02 06:00Z every 13 minutes, plus each zone's local midnights either side:
# Kolkata's 18:29/18:30Z, New York's 03:59/04:00Z (EDT) and 04:59/05:00Z (EST, after the 1 November change)
MINUTES = sorted(
    {datetime(2026, 10, 31, 3, tzinfo=UTC) + timedelta(minutes=13 * n) for n in range(236)}
    | {datetime(2026, 10, 31, h, m, tzinfo=UTC) for h, m in ((18, 29), (18, 30))}
    | {datetime(2026, 11, d, h, m, tzinfo=UTC) for d, h, m in ((1, 3, 59), (1, 4, 0), (2, 4, 59), (2, 5, 0))}
)


async def fixed(zones: Mapping[int, str] = ZONES) -> Mapping[int, str]:
    return zones


to_rows = make_to_rows(LIMITS, ProjectZones(fixed))


@pytest.fixture
async def ch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClickHouse]:
    ch = await connect(f"chdb://{tmp_path_factory.mktemp('rollups')}/chdb")
    await migrate_clickhouse(ch)
    yield ch
    await ch.close()


def count_message(project_id: int, minute: datetime, n: int) -> Message:
    actors = sorted(orjson.dumps([p, f"d-{p[-1]}"]).decode() for p in {PEOPLE[n % 5], PEOPLE[n * 3 % 5]})
    body = {"project_id": project_id, "event": "$pageview", "minute": minute.isoformat().replace("+00:00", "Z"),
            "count": n % 7 + 1, "actors": actors}  # fmt: skip
    return Message(EVENT_COUNTS_1M, 0, n, None, orjson.dumps(body))


def counts_batch(project_ids: Mapping[int, int] | None = None) -> list[Message]:
    """Every minute of MINUTES for each project; project_ids maps ZONES' keys to the stored ids."""
    ids = project_ids or {p: p for p in ZONES}
    return [count_message(ids[p], minute, n) for p in ZONES for n, minute in enumerate(MINUTES)]


async def store(ch: ClickHouse, batch: list[Message], to_rows=to_rows) -> None:  # type: ignore[no-untyped-def]
    results = await to_rows(batch)
    assert all(isinstance(r, Ok) for r in results)
    await TablesSink(ch).write([r.value for r in results if isinstance(r, Ok)])


def expected_days() -> dict[tuple[int, str], tuple[int, int]]:
    """(project, local day) -> (events, distinct persons), computed here from MINUTES."""
    days: dict[tuple[int, str], tuple[int, set[str]]] = {}
    for p, zone in ZONES.items():
        for n, minute in enumerate(MINUTES):
            key = (p, str(minute.astimezone(ZoneInfo(zone)).date()))
            events, people = days.get(key, (0, set()))
            days[key] = (events + n % 7 + 1, people | {PEOPLE[n % 5], PEOPLE[n * 3 % 5]})
    return {key: (events, len(people)) for key, (events, people) in days.items()}


HOURS_SQL = """
SELECT project_id, toString(hour) AS hour, toString(local_day) AS day, arraySum(maxMapMerge(counts).2) AS events,
       length(groupUniqArrayArrayMerge(actors)) AS persons
FROM event_counts_1h GROUP BY project_id, hour, local_day ORDER BY project_id, hour, day
"""
HOURS_FROM_MINUTES_SQL = """
SELECT project_id, toString(toStartOfHour(minute)) AS hour, toString(local_day) AS day, sum(count) AS events,
       length(arrayDistinct(arrayFlatten(groupArray(persons)))) AS persons
FROM event_counts_1m FINAL GROUP BY project_id, hour, local_day ORDER BY project_id, hour, day
"""
DAYS_SQL = """
SELECT project_id, toString(local_day) AS day, arraySum(maxMapMerge(counts).2) AS events,
       length(groupUniqArrayArrayMerge(actors)) AS persons
FROM event_counts_1d GROUP BY project_id, local_day ORDER BY project_id, day
"""


def as_days(rows: list[dict[str, object]]) -> dict[tuple[int, str], tuple[int, int]]:
    return {(r["project_id"], r["day"]): (r["events"], r["persons"]) for r in rows}  # type: ignore[misc]


async def test_hours_and_days_equal_the_minutes_in_each_time_zone(ch: ClickHouse) -> None:
    await store(ch, counts_batch())
    hours = await ch.query(HOURS_SQL)
    assert hours == await ch.query(HOURS_FROM_MINUTES_SQL)
    # 51 UTC hours (03:00Z on 31 October to 05:00Z on 2 November) per project; Kolkata's 18:00Z hours each
    # straddle a local midnight
    assert len(hours) == 3 * 51 + 2
    assert [
        (h["hour"], h["day"]) for h in hours if h["project_id"] == 2 and h["hour"].endswith("18:00:00")
    ] == [
        ("2026-10-31 18:00:00", "2026-10-31"),
        ("2026-10-31 18:00:00", "2026-11-01"),
        ("2026-11-01 18:00:00", "2026-11-01"),
        ("2026-11-01 18:00:00", "2026-11-02"),
    ]
    days = as_days(await ch.query(DAYS_SQL))
    assert days == expected_days()
    assert sorted(day for p, day in days if p == 3) == [
        "2026-10-30",
        "2026-10-31",
        "2026-11-01",
        "2026-11-02",
    ]
    # New York's 1 November has 25 hours (EDT -> EST at 06:00Z)
    assert len([h for h in hours if h["project_id"] == 3 and h["day"] == "2026-11-01"]) == 25
    assert await ch.query(
        "SELECT project_id, toString(minute) AS minute, toString(local_day) AS day FROM event_counts_1m FINAL"
        " WHERE minute IN ('2026-10-31 18:29:00', '2026-10-31 18:30:00', '2026-11-01 03:59:00',"
        " '2026-11-01 04:00:00', '2026-11-02 04:59:00', '2026-11-02 05:00:00') AND project_id IN (2, 3)"
        " ORDER BY project_id, minute"
    ) == [
        {"project_id": 2, "minute": "2026-10-31 18:29:00", "day": "2026-10-31"},
        {"project_id": 2, "minute": "2026-10-31 18:30:00", "day": "2026-11-01"},
        {"project_id": 2, "minute": "2026-11-01 03:59:00", "day": "2026-11-01"},
        {"project_id": 2, "minute": "2026-11-01 04:00:00", "day": "2026-11-01"},
        {"project_id": 2, "minute": "2026-11-02 04:59:00", "day": "2026-11-02"},
        {"project_id": 2, "minute": "2026-11-02 05:00:00", "day": "2026-11-02"},
        {"project_id": 3, "minute": "2026-10-31 18:29:00", "day": "2026-10-31"},
        {"project_id": 3, "minute": "2026-10-31 18:30:00", "day": "2026-10-31"},
        {"project_id": 3, "minute": "2026-11-01 03:59:00", "day": "2026-10-31"},
        {"project_id": 3, "minute": "2026-11-01 04:00:00", "day": "2026-11-01"},
        {"project_id": 3, "minute": "2026-11-02 04:59:00", "day": "2026-11-01"},
        {"project_id": 3, "minute": "2026-11-02 05:00:00", "day": "2026-11-02"},
    ]


async def test_minute_rows_inserted_twice_leave_the_hours_and_days_unchanged(ch: ClickHouse) -> None:
    batch = counts_batch()
    await store(ch, batch)
    hours, days = await ch.query(HOURS_SQL), await ch.query(DAYS_SQL)
    await store(ch, batch)  # the writer redelivers after a crash
    await store(ch, batch[100:300])  # the job re-emits part of it after a restore
    assert await ch.query(HOURS_SQL) == hours
    assert await ch.query(DAYS_SQL) == days
    assert as_days(days) == expected_days()
    await ch.execute("OPTIMIZE TABLE event_counts_1d FINAL")
    assert await ch.query(DAYS_SQL) == days
    assert await ch.query("SELECT count() AS n FROM event_counts_1m FINAL") == [{"n": 3 * len(MINUTES)}]


def session_message(start: str, end: str, events: int, entry: str | None, exit_: str, offset: int) -> Message:
    body = {"session_id": "s-1", "kind": "explicit", "project_id": 1, "person_id": PEOPLE[0],
            "distinct_id": "d1", "start": start, "end": end, "duration_seconds": 1.5, "event_count": events,
            "pageview_count": 1, "entry_url": entry, "exit_url": exit_, "bounced": events == 1,
            "browser": "Chrome", "os": None, "device_type": "Desktop", "country": "FR"}  # fmt: skip
    return Message(SESSIONS, 0, offset, b"s-1", orjson.dumps(body))


async def test_sessions_are_stored_once_and_merged_by_session_id(ch: ClickHouse) -> None:
    first = session_message(
        "2026-11-01T10:00:00Z", "2026-11-01T10:10:00.250Z", 3, "https://x/a", "https://x/b", 0
    )
    later = session_message("2026-11-01T11:00:00Z", "2026-11-01T11:00:00Z", 1, None, "https://x/c", 1)
    await store(ch, [first, later, first])  # the first one replayed
    assert await ch.query("SELECT count() AS n FROM sessions FINAL") == [{"n": 2}]
    assert await ch.query("SELECT * FROM sessions_merged") == [
        {"project_id": 1, "session_id": "s-1", "kind": "explicit", "person_id": PEOPLE[0], "distinct_id": "d1",
         "start": "2026-11-01 10:00:00.000", "end": "2026-11-01 11:00:00.000", "duration_seconds": 3600.0,
         "event_count": 4, "pageview_count": 2, "entry_url": "https://x/a", "exit_url": "https://x/c",
         "bounced": 0, "browser": "Chrome", "os": "", "device_type": "Desktop", "country": "FR"},
    ]  # fmt: skip


async def test_late_events_are_stored_once_and_counted(ch: ClickHouse) -> None:
    body = {"uuid": PEOPLE[4], "project_id": 1, "event": "$pageview", "distinct_id": "d1", "person_id": PEOPLE[0],
            "timestamp": "2026-11-01T10:00:00.5Z", "kafka_partition": 2, "kafka_offset": 41}  # fmt: skip
    message = Message(LATE_EVENTS, 0, 0, None, orjson.dumps(body))
    before = WRITER_LATE_EVENTS._value.get()
    await store(ch, [message, message])
    assert WRITER_LATE_EVENTS._value.get() - before == 2
    assert await ch.query(
        "SELECT toString(uuid) AS u, toString(timestamp) AS t, kafka_offset FROM late_events FINAL"
    ) == [{"u": PEOPLE[4], "t": "2026-11-01 10:00:00.500000", "kafka_offset": 41}]


async def test_malformed_flink_messages_are_parked_with_their_reason() -> None:
    good = count_message(1, MINUTES[0], 0)
    counts = orjson.loads(good.value)
    session = orjson.loads(
        session_message("2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z", 1, None, "u", 0).value
    )
    bad = [
        {**session, "kind": "tab"},
        {**session, "end": "yesterday"},
        {**session, "bounced": 1},
        {**counts, "actors": ['["not-a-uuid", "d"]']},
        {**counts, "actors": [orjson.dumps([PEOPLE[0]]).decode()]},
        {**counts, "count": -1},
        {key: value for key, value in counts.items() if key != "minute"},
        {**counts, "project_id": 99},
    ]
    messages = [
        Message(SESSIONS if "kind" in b else EVENT_COUNTS_1M, 0, n, None, orjson.dumps(b))
        for n, b in enumerate(bad)
    ]
    results = await to_rows([good, *messages])
    assert results[0] == Ok(
        (
            EVENT_COUNTS_1M,
            ((1, "$pageview", MINUTES[0], 1, [f"d-{PEOPLE[0][-1]}"], [PEOPLE[0]], date(2026, 10, 31))),
        )
    )
    assert results[1:] == [
        DeadLetter("invalid_field", "sessions: kind: not one of ['amplitude', 'explicit', 'window']"),
        DeadLetter(
            "invalid_field", "sessions: end: not an ISO-8601 time with a zone within years 1-9999 UTC"
        ),
        DeadLetter("invalid_field", "sessions: bounced: missing or not a boolean"),
        DeadLetter(
            "invalid_field", "event_counts_1m: actors: not an array of JSON texts [person UUID, distinct id]"
        ),
        DeadLetter(
            "invalid_field", "event_counts_1m: actors: not an array of JSON texts [person UUID, distinct id]"
        ),
        DeadLetter("invalid_field", "event_counts_1m: count: missing or not a non-negative integer"),
        DeadLetter("missing_field", "event_counts_1m: minute: missing"),
        DeadLetter("unknown_project", "event_counts_1m: project_id 99: no such project"),
    ]


@pytest.mark.postgres
async def test_time_zones_come_from_postgres_projects(ch: ClickHouse, pg_dsn: str) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        ids = {p: (await ensure_project(pool, f"p{p}", timezone=zone)).id for p, zone in ZONES.items()}
        await store(ch, counts_batch(ids), make_to_rows(LIMITS, ProjectZones(lambda: load_time_zones(pool))))
    finally:
        await pool.close()
    by_id = {stored: p for p, stored in ids.items()}
    assert {
        (by_id[p], day): v for (p, day), v in as_days(await ch.query(DAYS_SQL)).items()
    } == expected_days()

"""The dlq worker and its commands with the real Tansu broker and Postgres: dead letters indexed exactly
once, `--list`, `--replay` and its policies, a replayed message parked again and then dead."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from tests.components import create_database, drop_database, wait_until
from workers.consume import BatchFailed, dead_letter_record
from workers.dlq import add_arguments, commands, list_command, main, replay_command
from workers.dlq.index import refresh_gauge
from workers.kafka import DEAD_LETTER, Message, Record, ensure_topics, start_producer
from workers.migrate import migrate_postgres
from workers.results import DeadLetter
from workers.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

GROUP_PREFIX = f"dlq-test-{uuid.uuid4().hex[:8]}"  # one dlq consumer group for the module
PARKED = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
ROW = """SELECT id, source_topic, source_partition, source_offset, stage, reason, error, key, value, headers,
                uuid, first_seen, last_seen, attempts, state
         FROM dead_letters WHERE {} ORDER BY id"""


@pytest.fixture
def settings(kafka_settings: Settings, pg_dsn: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        kafka_session_timeout_seconds=2,
        kafka_consumer_group_prefix=GROUP_PREFIX,
        postgres_dsn=pg_dsn,
        dlq_max_attempts=3,
        sink_retry_attempts=2,
        sink_retry_backoff_seconds=0.01,
    )


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_dsn)
    yield connection
    await connection.close()


@pytest.fixture
def names() -> tuple[str, str]:
    """A source topic and a stage of this test's own."""
    return f"src-{uuid.uuid4().hex[:8]}", f"stage-{uuid.uuid4().hex[:8]}"


def parked(topic: str, offset: int, value: bytes, stage: str, reason: str, **extra: object) -> Record:
    """The dead letter a stage writes for the message at `offset` of `topic` (partition 0). One key: one
    dead_letter partition, so rows are indexed (ids given) in this order."""
    headers = tuple((k, str(v).encode()) for k, v in extra.items())
    message = Message(topic, 0, offset, b"user-1", value, headers)
    return dead_letter_record(message, DeadLetter(reason, f"{reason} at {offset}"), stage, PARKED)


async def run_dlq(settings: Settings, done: Callable[[], Awaitable[object]]) -> None:
    """The dlq worker until `done()` is truthy; then it stops (committing what it indexed)."""
    stopping = asyncio.Event()
    task = asyncio.create_task(main(settings, stopping))
    try:
        async with asyncio.timeout(30):
            while not task.done() and not await done():
                await asyncio.sleep(0.1)
    finally:
        stopping.set()
        await task


async def index(
    settings: Settings, conn: asyncpg.Connection, records: list[Record], where: str, rows: int
) -> list[asyncpg.Record]:
    """Produce dead letters, run the dlq until `rows` rows match `where`, return them."""
    producer = await start_producer(settings)
    await producer.send_all(DEAD_LETTER, records)
    await producer.stop()

    async def indexed() -> bool:
        return len(await conn.fetch(ROW.format(where))) == rows

    await run_dlq(settings, indexed)
    return await conn.fetch(ROW.format(where))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


async def read_topic(
    settings: Settings, topic: str
) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    """Every message of `topic` as (key, value, headers), sorted by value."""
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    await reader.start()
    try:
        await reader.topics()  # fetches the metadata
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        ends = await reader.end_offsets(partitions)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        found = []
        async with asyncio.timeout(15):
            while len(found) < sum(ends.values()):
                for records in (await reader.getmany(timeout_ms=500)).values():
                    found.extend((r.key, r.value, list(r.headers)) for r in records)
    finally:
        await reader.stop()
    return sorted(found, key=lambda m: m[1])


def replay_headers(row_id: int, attempts: int) -> list[tuple[str, bytes]]:
    return [("replay_of", str(row_id).encode()), ("attempts", str(attempts).encode())]


async def test_dead_letters_indexed_once_each(
    settings: Settings, conn: asyncpg.Connection, names: tuple[str, str]
) -> None:
    topic, stage = names
    event = b'{"uuid":"0190c5a4-0000-7000-8000-000000000001","event":"$pageview"}'
    records = [
        parked(topic, 5, event, stage, "invalid_event"),
        parked(topic, 6, b"{not json", stage, "invalid_json"),
        parked(topic, 6, b"{not json", stage, "invalid_json"),  # parked twice (a retried produce): one row
        parked(topic, 7, b'{"uuid":12,"bad\\u0000":1}', stage, "invalid_event"),
    ]
    marker = str(uuid.uuid4())
    headerless = Record(None, b'{"uuid":"%s"}' % marker.encode(), (("note", b"a\x00b"),))
    rows = await index(settings, conn, [*records, headerless], f"stage = '{stage}' OR uuid = '{marker}'", 4)

    def headers(offset: int, reason: str) -> dict[str, str]:
        return {
            "source_topic": topic, "source_partition": "0", "source_offset": str(offset), "stage": stage,
            "reason": reason, "error": f"{reason} at {offset}", "time": PARKED.isoformat(), "attempts": "1",
        }  # fmt: skip

    got = [dict(r) | {"id": None, "headers": orjson.loads(r["headers"])} for r in rows]
    unknown = got.pop(next(i for i, r in enumerate(got) if r["stage"] == "unknown"))
    assert got == [
        {
            "id": None, "source_topic": topic, "source_partition": 0, "source_offset": 5, "stage": stage,
            "reason": "invalid_event", "error": "invalid_event at 5", "key": b"user-1", "value": event,
            "headers": headers(5, "invalid_event"), "uuid": "0190c5a4-0000-7000-8000-000000000001",
            "first_seen": PARKED, "last_seen": PARKED, "attempts": 1, "state": "parked",
        },
        {
            "id": None, "source_topic": topic, "source_partition": 0, "source_offset": 6, "stage": stage,
            "reason": "invalid_json", "error": "invalid_json at 6", "key": b"user-1", "value": b"{not json",
            "headers": headers(6, "invalid_json"), "uuid": None,
            "first_seen": PARKED, "last_seen": PARKED, "attempts": 1, "state": "parked",
        },
        {
            "id": None, "source_topic": topic, "source_partition": 0, "source_offset": 7, "stage": stage,
            "reason": "invalid_event", "error": "invalid_event at 7", "key": b"user-1",
            "value": b'{"uuid":12,"bad\\u0000":1}', "headers": headers(7, "invalid_event"), "uuid": None,
            "first_seen": PARKED, "last_seen": PARKED, "attempts": 1, "state": "parked",
        },
    ]  # fmt: skip
    # no source headers: nowhere to replay it to, so dead at once, under its own place in dead_letter
    assert unknown["source_topic"] == DEAD_LETTER
    assert (unknown["stage"], unknown["reason"], unknown["state"]) == ("unknown", "unknown", "dead")
    assert unknown["headers"] == {"note": "a\ufffdb"}
    assert (unknown["key"], unknown["attempts"], unknown["uuid"]) == (None, 1, marker)

    def indexed(reason: str) -> float | None:
        return REGISTRY.get_sample_value("ua_dlq_indexed_messages_total", {"stage": stage, "reason": reason})

    def gauge(reason: str, state: str) -> float | None:
        return REGISTRY.get_sample_value(
            "ua_dlq_messages", {"stage": stage, "reason": reason, "state": state}
        )

    assert (indexed("invalid_event"), indexed("invalid_json")) == (2, 2)
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=1)
    await refresh_gauge(pool)
    await pool.close()
    assert (gauge("invalid_event", "parked"), gauge("invalid_json", "parked")) == (2, 1)


async def test_list(
    settings: Settings, conn: asyncpg.Connection, names: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic, stage = names
    later = PARKED + timedelta(hours=1)
    records = [
        parked(topic, 0, b'{"uuid":"u-0"}', stage, "invalid_event"),
        parked(topic, 1, b"[1]", stage, "invalid_json"),
        dead_letter_record(
            Message(topic, 2, 9, b"user-1", b"{}"), DeadLetter("too_big", "line one\nline two"), stage, later
        ),
    ]
    rows = await index(settings, conn, records, f"stage = '{stage}'", 3)
    ids = [r["id"] for r in rows]
    capsys.readouterr()

    assert await list_command(settings, parse("--list", "--json", "--stage", stage)) == 0
    listed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    common = {"stage": stage, "attempts": 1, "state": "parked", "source_topic": topic}
    assert listed == [
        {**common, "id": ids[2], "source_partition": 2, "source_offset": 9, "reason": "too_big",
         "error": "line one\nline two", "uuid": None, "first_seen": "2026-12-01T15:00:00+00:00",
         "last_seen": "2026-12-01T15:00:00+00:00"},
        {**common, "id": ids[1], "source_partition": 0, "source_offset": 1, "reason": "invalid_json",
         "error": "invalid_json at 1", "uuid": None, "first_seen": "2026-12-01T14:00:00+00:00",
         "last_seen": "2026-12-01T14:00:00+00:00"},
        {**common, "id": ids[0], "source_partition": 0, "source_offset": 0, "reason": "invalid_event",
         "error": "invalid_event at 0", "uuid": "u-0", "first_seen": "2026-12-01T14:00:00+00:00",
         "last_seen": "2026-12-01T14:00:00+00:00"},
    ]  # fmt: skip

    async def listed_ids(*argv: str) -> list[int]:
        assert await list_command(settings, parse("--list", "--json", "--stage", stage, *argv)) == 0
        return [orjson.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]

    assert await listed_ids("--reason", "invalid_json") == [ids[1]]
    assert await listed_ids("--since", "2026-12-01T14:30:00") == [ids[2]]
    assert await listed_ids("--id", str(ids[0]), "--id", str(ids[2])) == [ids[2], ids[0]]
    assert await listed_ids("--max", "2") == [ids[2], ids[1]]
    assert await listed_ids("--reason", "nothing-such") == []

    assert await list_command(settings, parse("--list", "--stage", stage)) == 0
    table = capsys.readouterr().out
    w = max(2, *(len(str(i)) for i in ids))
    assert table.splitlines() == [
        f"{'id'.ljust(w)}  state   attempts  {'stage'.ljust(len(stage))}  reason         "
        f"{'source'.ljust(len(topic) + 4)}  last_seen                  uuid  error",
        f"{str(ids[2]).ljust(w)}  parked  1         {stage}  too_big        {topic}/2/9  "
        "2026-12-01T15:00:00+00:00        line one line two",
        f"{str(ids[1]).ljust(w)}  parked  1         {stage}  invalid_json   {topic}/0/1  "
        "2026-12-01T14:00:00+00:00        invalid_json at 1",
        f"{str(ids[0]).ljust(w)}  parked  1         {stage}  invalid_event  {topic}/0/0  "
        "2026-12-01T14:00:00+00:00  u-0   invalid_event at 0",
    ]


async def test_replay_sends_exact_bytes_once(
    settings: Settings, conn: asyncpg.Connection, names: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic, stage = names
    await ensure_topics(settings, [topic])
    records = [
        parked(topic, 0, b'{"n":0}', stage, "persons_down"),
        parked(topic, 1, b'{"n":1}', stage, "persons_down"),
        parked(topic, 2, b'{"n":2}', stage, "other_reason"),
    ]
    rows = await index(settings, conn, records, f"stage = '{stage}'", 3)
    ids = [r["id"] for r in rows]
    capsys.readouterr()

    replay = parse("--replay", "--reason", "persons_down", "--stage", stage)
    assert (
        await replay_command(
            settings, parse("--replay", "--max", "1", "--reason", "persons_down", "--stage", stage)
        )
        == 0
    )
    assert capsys.readouterr().out == "replayed 1, skipped 0, dead 0\n"
    assert await replay_command(settings, replay) == 0
    assert capsys.readouterr().out == "replayed 1, skipped 0, dead 0\n"
    assert await read_topic(settings, topic) == [
        (b"user-1", b'{"n":0}', replay_headers(ids[0], 2)),
        (b"user-1", b'{"n":1}', replay_headers(ids[1], 2)),
    ]
    states = await conn.fetch(f"SELECT state, attempts FROM dead_letters WHERE stage = '{stage}' ORDER BY id")
    assert [tuple(r) for r in states] == [("replayed", 1), ("replayed", 1), ("parked", 1)]

    assert await replay_command(settings, replay) == 0
    assert capsys.readouterr().out == "replayed 0, skipped 0, dead 0\n"
    assert len(await read_topic(settings, topic)) == 2


async def test_replayed_message_parked_again_then_dead(
    settings: Settings, conn: asyncpg.Connection, names: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic, stage = names
    await ensure_topics(settings, [topic])
    [row] = await index(
        settings, conn, [parked(topic, 0, b'{"n":0}', stage, "flaky")], f"stage = '{stage}'", 1
    )
    replay = parse("--replay", "--json", "--stage", stage)

    async def fails_again(attempts: int, offset: int, at: datetime) -> asyncpg.Record:
        """The replayed message, consumed from the source topic, parked again by its stage."""
        [(key, value, headers)] = [
            m for m in await read_topic(settings, topic) if m[2] == replay_headers(row["id"], attempts)
        ]
        message = Message(topic, 1, offset, key, value, tuple(headers))
        record = dead_letter_record(message, DeadLetter("still_flaky", f"try {attempts}"), stage, at)
        [again] = await index(settings, conn, [record], f"id = {row['id']} AND attempts = {attempts}", 1)
        capsys.readouterr()  # the worker's log lines
        return again

    capsys.readouterr()
    assert await replay_command(settings, replay) == 0
    assert [orjson.loads(line) for line in capsys.readouterr().out.splitlines()] == [
        {"id": row["id"], "source_topic": topic, "action": "replayed", "attempts": 2},
        {"replayed": 1, "skipped": 0, "dead": 0, "stopped": False, "dry_run": False},
    ]
    second = PARKED + timedelta(minutes=1)
    again = await fails_again(2, 10, second)
    assert [again[c] for c in ("state", "attempts", "reason", "error")] == [
        "parked",
        2,
        "still_flaky",
        "try 2",
    ]
    assert (again["first_seen"], again["last_seen"]) == (PARKED, second)
    assert (again["source_offset"], again["source_partition"]) == (0, 0)  # the row keeps the original's place
    assert orjson.loads(again["headers"])["replay_of"] == str(row["id"])

    assert await replay_command(settings, replay) == 0
    assert capsys.readouterr().out.splitlines() == [
        f'{{"id":{row["id"]},"source_topic":"{topic}","action":"replayed","attempts":3}}',
        '{"replayed":1,"skipped":0,"dead":0,"stopped":false,"dry_run":false}',
    ]
    third = PARKED + timedelta(minutes=2)
    dead = await fails_again(3, 11, third)  # DLQ_MAX_ATTEMPTS=3 reached
    assert (dead["state"], dead["attempts"], dead["last_seen"]) == ("dead", 3, third)

    assert await replay_command(settings, replay) == 0
    assert capsys.readouterr().out.splitlines() == [
        '{"replayed":0,"skipped":0,"dead":0,"stopped":false,"dry_run":false}'
    ]
    assert len(await read_topic(settings, topic)) == 2
    count = await conn.fetchval(f"SELECT count(*) FROM dead_letters WHERE stage = '{stage}'")
    assert count == 1


async def test_replay_marks_rows_past_max_attempts_dead(
    settings: Settings,
    conn: asyncpg.Connection,
    names: tuple[str, str],
    make_settings: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic, stage = names
    await ensure_topics(settings, [topic])
    records = [parked(topic, 0, b'{"n":0}', stage, "r", attempts=2), parked(topic, 1, b'{"n":1}', stage, "r")]
    rows = await index(settings, conn, records, f"stage = '{stage}'", 2)
    assert [(r["attempts"], r["state"]) for r in rows] == [(2, "parked"), (1, "parked")]
    capsys.readouterr()

    lower = make_settings(
        **{k: getattr(settings, k) for k in ("kafka_bootstrap_servers", "postgres_dsn")}, dlq_max_attempts=2
    )
    assert await replay_command(lower, parse("--replay", "--stage", stage)) == 0
    assert capsys.readouterr().out == "replayed 1, skipped 0, dead 1\n"
    assert await read_topic(settings, topic) == [(b"user-1", b'{"n":1}', replay_headers(rows[1]["id"], 2))]
    states = await conn.fetch(f"SELECT state FROM dead_letters WHERE stage = '{stage}' ORDER BY id")
    assert [r["state"] for r in states] == ["dead", "replayed"]


async def test_dry_run_changes_nothing(
    settings: Settings, conn: asyncpg.Connection, names: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic, stage = names
    await ensure_topics(settings, [topic])
    records = [
        parked(topic, 0, b'{"n":0}', stage, "r"),
        parked(topic, 1, b"oops", stage, "r"),
        parked(topic, 2, b'{"n":2}', stage, "r", attempts=3),
    ]
    rows = await index(settings, conn, records, f"stage = '{stage}'", 3)
    ids = [r["id"] for r in rows]
    capsys.readouterr()

    assert (
        await replay_command(
            settings, parse("--replay", "--dry-run", "--stage", stage, "--policy", "skip-invalid")
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        f"would replay {ids[0]} to {topic} (attempt 2)",
        f"would skip {ids[1]}: the value is not a JSON object",
        "dry run: replayed 1, skipped 1, dead 0",
    ]
    # attempts=3 header at DLQ_MAX_ATTEMPTS=3: indexed dead, so not even selected
    assert [r["state"] for r in rows] == ["parked", "parked", "dead"]
    after = await conn.fetch(ROW.format(f"stage = '{stage}'"))
    assert after == rows
    assert await read_topic(settings, topic) == []


@pytest.mark.parametrize(
    ("policy", "code", "output", "sent", "states"),
    [
        ("stop-on-error", 1, ["stop at {1}: the value is not a JSON object", "replayed 1, skipped 0, dead 0"],
         [b'{"n":0}'], ["replayed", "parked", "parked", "parked"]),
        ("skip-invalid", 0, ["replayed 2, skipped 2, dead 0"],
         [b'{"n":0}', b'{"n":3}'], ["replayed", "parked", "parked", "replayed"]),
        ("reinsert", 0, ["replayed 4, skipped 0, dead 0"],
         [b"[1]", b"not json", b'{"n":0}', b'{"n":3}'], ["replayed"] * 4),
    ],
)  # fmt: skip
async def test_policies(
    settings: Settings,
    conn: asyncpg.Connection,
    names: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    policy: str,
    code: int,
    output: list[str],
    sent: list[bytes],
    states: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, stage = names
    monkeypatch.setattr(commands, "CHUNK", 2)  # the rows in two transactions
    await ensure_topics(settings, [topic])
    values = [b'{"n":0}', b"not json", b"[1]", b'{"n":3}']
    records = [parked(topic, i, v, stage, "r") for i, v in enumerate(values)]
    rows = await index(settings, conn, records, f"stage = '{stage}'", 4)
    ids = [r["id"] for r in rows]
    capsys.readouterr()

    assert await replay_command(settings, parse("--replay", "--stage", stage, "--policy", policy)) == code
    assert capsys.readouterr().out.splitlines() == [line.format(*ids) for line in output]
    assert [m[1] for m in await read_topic(settings, topic)] == sent
    after = await conn.fetch(f"SELECT state FROM dead_letters WHERE stage = '{stage}' ORDER BY id")
    assert [r["state"] for r in after] == states


async def test_postgres_gone_fails_the_worker(
    settings: Settings, make_settings: Callable[..., Settings], names: tuple[str, str]
) -> None:
    topic, stage = names
    dsn = await create_database()
    await migrate_postgres(dsn)
    own = make_settings(
        **{
            k: getattr(settings, k)
            for k in ("kafka_bootstrap_servers", "sink_retry_attempts", "sink_retry_backoff_seconds")
        },
        kafka_consumer_group_prefix=f"dlq-gone-{uuid.uuid4().hex[:8]}",
        postgres_dsn=dsn,
    )
    producer = await start_producer(own)
    stopping = asyncio.Event()
    task = asyncio.create_task(main(own, stopping))
    conn = await asyncpg.connect(dsn)
    try:
        await producer.send_all(DEAD_LETTER, [parked(topic, 0, b"{}", stage, "r")])
        where = f"stage = '{stage}'"
        assert await wait_until(lambda: conn.fetchval(f"SELECT count(*) FROM dead_letters WHERE {where}"))
    finally:
        await conn.close()
    await drop_database(dsn)
    await producer.send_all(DEAD_LETTER, [parked(topic, 1, b"{}", stage, "r")])
    await producer.stop()
    with pytest.raises(BatchFailed, match="dlq sink failed 2 times"):
        async with asyncio.timeout(30):
            await task

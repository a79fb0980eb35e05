"""persons against a real Postgres database created for the run: identity rules with PostHog's behaviour
as the expectation, person properties, enrichment, and what goes to Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from workers.enrich import GeoIP, RulesCache
from workers.identity import personless_id
from workers.kafka import EVENTS, PERSON_DISTINCT_IDS, PERSONS, Message, Record
from workers.metrics import PERSONS_POSTGRES_STATEMENTS, PERSONS_REFUSED
from workers.persons import Enrichment, PersonStore, init_connection, make_process
from workers.projects import ensure_project
from workers.results import DeadLetter, Drop, Ok
from workers.sanitize import Limits

pytestmark = pytest.mark.postgres
MAX_BYTES = 4096


@pytest.fixture(scope="module")
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=8, init=init_connection)
    yield pool
    await pool.close()


@pytest.fixture
async def project_id(pool: asyncpg.Pool) -> int:
    """A project per test: distinct ids never collide between tests."""
    project = await ensure_project(pool, "persons-test", api_token=f"tok-{uuid.uuid4().hex}")
    return project.id


def raw(project_id: int, distinct_id: str, event: str = "$pageview", **fields: Any) -> Message:
    body = {
        "uuid": str(uuid.uuid4()),
        "event": event,
        "distinct_id": distinct_id,
        "project_id": project_id,
        "timestamp": "2026-11-01T10:00:00.000000Z",
        "received_at": "2026-11-01T10:00:01.000000Z",
        "properties": fields.pop("properties", {}),
        **fields,
    }
    return Message("events_raw", 0, 0, f"tok:{distinct_id}".encode(), orjson.dumps(body))


class Persons:
    """One persons worker's processing step over a store of its own."""

    def __init__(self, pool: asyncpg.Pool, enrichment: Enrichment | None = None) -> None:
        self.pool = pool
        self.published: list[tuple[str, Record]] = []  # what the store sent before its commits
        self.store = PersonStore(pool, MAX_BYTES, publish=self._publish)
        self.process = make_process(self.store, Limits(64, 10_000, 1024), enrichment)

    async def _publish(self, outputs: list[tuple[str, Record]]) -> None:
        self.published += outputs

    async def run(self, *messages: Message) -> list[dict[str, Any]]:
        """The events produced to `events` (the result must be all Ok)."""
        results = await self.process(list(messages))
        events = []
        for result in results:
            assert isinstance(result, Ok), result
            events += [orjson.loads(r.value) for t, r in result.value if t == EVENTS]
        return events

    async def outputs(self, *messages: Message) -> dict[str, list[dict[str, Any]]]:
        """Every message the batch produced, by topic: its events and the person changes it published."""
        self.published = []
        results = await self.process(list(messages))
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for result in results:
            assert isinstance(result, Ok)
            for topic, record in [*result.value, *self.published]:
                by_topic.setdefault(topic, []).append(orjson.loads(record.value))
            self.published = []
        return by_topic


async def person_of(pool: asyncpg.Pool, project_id: int, distinct_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        """SELECT p.* FROM person_distinct_ids d JOIN persons p ON p.id = d.person_id
           WHERE d.project_id = $1 AND d.distinct_id = $2""",
        project_id,
        distinct_id,
    )


async def persons_count(pool: asyncpg.Pool, project_id: int) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM persons WHERE project_id = $1", project_id))


def identify(project_id: int, distinct_id: str, anon: str, **properties: Any) -> Message:
    return raw(project_id, distinct_id, "$identify", properties={"$anon_distinct_id": anon, **properties})


def alias(project_id: int, distinct_id: str, other: str) -> Message:
    return raw(project_id, distinct_id, "$create_alias", properties={"alias": other})


async def test_first_sight_creates_one_person_and_later_events_reuse_it(
    pool: asyncpg.Pool, project_id: int
) -> None:
    events = await Persons(pool).run(
        raw(project_id, "alice"), raw(project_id, "alice"), raw(project_id, "bob")
    )
    assert events[0]["person_id"] == events[1]["person_id"] != events[2]["person_id"]
    # a fresh worker (no cache) finds the same person in Postgres
    [again] = await Persons(pool).run(raw(project_id, "alice"))
    assert again["person_id"] == events[0]["person_id"]
    assert await persons_count(pool, project_id) == 2


async def test_output_keeps_the_event_and_key_and_adds_the_person(
    pool: asyncpg.Pool, project_id: int
) -> None:
    message = raw(project_id, "carol", properties={"plan": "pro"})
    [result] = await Persons(pool).process([message])
    assert isinstance(result, Ok)
    [record] = [r for t, r in result.value if t == EVENTS]
    assert record.key == message.key
    event = orjson.loads(record.value)
    sent = orjson.loads(message.value)
    assert {k: v for k, v in event.items() if k not in ("person_id", "person_properties")} == sent
    assert event["person_properties"] == {}
    uuid.UUID(event["person_id"])


async def test_identify_then_events_on_both_ids_are_one_person(pool: asyncpg.Pool, project_id: int) -> None:
    worker = Persons(pool)
    [anon_event] = await worker.run(raw(project_id, "anon-1"))
    [user_event] = await worker.run(raw(project_id, "user-1"))
    assert anon_event["person_id"] != user_event["person_id"]
    events = await worker.run(identify(project_id, "user-1", "anon-1"), raw(project_id, "anon-1"))
    assert events[0]["person_id"] == events[1]["person_id"] == user_event["person_id"]
    person = await person_of(pool, project_id, "anon-1")
    assert (
        person is not None and person["id"] == uuid.UUID(user_event["person_id"]) and person["is_identified"]
    )
    assert await persons_count(pool, project_id) == 1


async def test_identify_with_an_unknown_anonymous_id_adds_it_to_the_person(
    pool: asyncpg.Pool, project_id: int
) -> None:
    worker = Persons(pool)
    [first] = await worker.run(raw(project_id, "user-2"))
    await worker.run(identify(project_id, "user-2", "anon-never-seen"))
    person = await person_of(pool, project_id, "anon-never-seen")
    assert person is not None and str(person["id"]) == first["person_id"]


async def test_identify_of_an_already_identified_person_does_not_merge(
    pool: asyncpg.Pool, project_id: int
) -> None:
    worker = Persons(pool)
    await worker.run(identify(project_id, "user-a", "anon-a"))  # anon-a's person is now identified
    await worker.run(raw(project_id, "user-b"))
    before = PERSONS_REFUSED.labels("already_identified")._value.get()
    [event] = await worker.run(identify(project_id, "user-b", "anon-a"))
    assert PERSONS_REFUSED.labels("already_identified")._value.get() == before + 1
    a, b = await person_of(pool, project_id, "anon-a"), await person_of(pool, project_id, "user-b")
    assert a is not None and b is not None and a["id"] != b["id"]
    assert event["person_id"] == str(b["id"])


async def test_merge_dangerously_merges_identified_persons(pool: asyncpg.Pool, project_id: int) -> None:
    worker = Persons(pool)
    await worker.run(identify(project_id, "user-x", "anon-x"), identify(project_id, "user-y", "anon-y"))
    message = raw(project_id, "user-x", "$merge_dangerously", properties={"alias": "user-y"})
    await worker.run(message)
    people = {
        str((await person_of(pool, project_id, d))["id"]) for d in ("user-x", "anon-x", "user-y", "anon-y")
    }  # type: ignore[index]
    assert len(people) == 1
    assert await persons_count(pool, project_id) == 1


async def test_alias_chain_ends_in_one_person(pool: asyncpg.Pool, project_id: int) -> None:
    worker = Persons(pool)
    await worker.run(raw(project_id, "a"), raw(project_id, "b"), raw(project_id, "c"))
    # PostHog: distinct id a aliases b (b's anonymous person merges into a's), then b aliases c
    await worker.run(alias(project_id, "a", "b"))
    await worker.run(alias(project_id, "b", "c"))
    people = {(await person_of(pool, project_id, d))["id"] for d in "abc"}  # type: ignore[index]
    assert len(people) == 1
    assert await persons_count(pool, project_id) == 1


async def test_merge_of_persons_with_many_ids_moves_every_id_and_follows_posthog_rules(
    pool: asyncpg.Pool, project_id: int
) -> None:
    worker = Persons(pool)
    source_ids = [f"src-{i}" for i in range(20)]
    target_ids = [f"tgt-{i}" for i in range(20)]
    older = raw(project_id, source_ids[0], timestamp="2026-01-01T00:00:00Z", set={"a": "source", "s": 1})
    await worker.run(older, *(alias(project_id, d, source_ids[0]) for d in source_ids[1:]))
    await worker.run(raw(project_id, target_ids[0], set={"a": "target", "t": 2}))
    await worker.run(*(alias(project_id, d, target_ids[0]) for d in target_ids[1:]))
    # two identified persons, each with 20 ids (aliases identify): only $merge_dangerously merges them
    merge = raw(project_id, target_ids[5], "$merge_dangerously", properties={"alias": source_ids[7]})
    outputs = await Persons(pool).outputs(merge)
    person = await person_of(pool, project_id, source_ids[3])
    assert person is not None
    assert {
        d for d in source_ids + target_ids if (await person_of(pool, project_id, d))["id"] == person["id"]
    } == set(  # type: ignore[index]
        source_ids + target_ids
    )
    assert person["properties"] == {"a": "target", "s": 1, "t": 2}  # {...source, ...target}
    assert person["created_at"].isoformat().startswith("2026-01-01")  # the oldest
    assert await persons_count(pool, project_id) == 1
    # Kafka: the surviving person at its new version, the merged one deleted, all 20 moved ids
    by_id = {p["id"]: p for p in outputs[PERSONS]}
    assert by_id[str(person["id"])]["version"] == person["version"]
    [deleted] = [p for p in outputs[PERSONS] if p["is_deleted"]]
    assert deleted["id"] != str(person["id"])
    moved = {d["distinct_id"] for d in outputs[PERSON_DISTINCT_IDS] if d["version"] > 0}
    assert moved == set(source_ids)


async def test_personless_events_get_a_stable_id_and_a_later_identify_links_it(
    pool: asyncpg.Pool, project_id: int
) -> None:
    worker = Persons(pool)
    personless = {"$process_person_profile": False}
    events = await worker.run(
        raw(project_id, "visitor", properties=personless), raw(project_id, "visitor", properties=personless)
    )
    assert {e["person_id"] for e in events} == {str(personless_id(project_id, "visitor"))}
    assert await persons_count(pool, project_id) == 0
    [identified] = await worker.run(identify(project_id, "member", "visitor"))
    person = await person_of(pool, project_id, "visitor")
    assert person is not None and str(person["id"]) == identified["person_id"]
    # once it has a person, a personless event reads it (and writes nothing)
    [later] = await worker.run(raw(project_id, "visitor", properties=personless))
    assert later["person_id"] == identified["person_id"]


async def test_set_once_never_overwrites_and_set_does(pool: asyncpg.Pool, project_id: int) -> None:
    worker = Persons(pool)
    events = await worker.run(
        raw(project_id, "p", properties={"$set_once": {"first": "a"}, "$set": {"last": "a"}}),
        raw(project_id, "p", set_once={"first": "b"}, set={"last": "b"}),
        raw(project_id, "p", properties={"$unset": ["last"]}),
    )
    assert [e["person_properties"] for e in events] == [
        {"first": "a", "last": "a"},
        {"first": "a", "last": "b"},
        {"first": "a"},
    ]
    person = await person_of(pool, project_id, "p")
    assert person is not None and person["properties"] == {"first": "a"}


async def test_amplitude_user_properties_and_device_link(pool: asyncpg.Pool, project_id: int) -> None:
    worker = Persons(pool)
    device = raw(project_id, "device-0001", protocol="amplitude", properties={"$device_id": "device-0001"})
    user_properties = {"$setOnce": {"source": "ad"}, "$add": {"logins": 1}, "$append": {"tags": "a"}}
    linked = raw(
        project_id,
        "user-0001",
        protocol="amplitude",
        properties={"$device_id": "device-0001", "$user_id": "user-0001"},
        user_properties=user_properties,
    )
    again = raw(
        project_id,
        "user-0001",
        protocol="amplitude",
        user_properties={**user_properties, "$setOnce": {"source": "seo"}},
    )
    events = await worker.run(device, linked, again)
    assert events[0]["person_id"] == events[1]["person_id"] == events[2]["person_id"]
    assert events[2]["person_properties"] == {"source": "ad", "logins": 2, "tags": ["a", "a"]}


async def test_no_postgres_write_when_nothing_changed(pool: asyncpg.Pool, project_id: int) -> None:
    worker = Persons(pool)
    await worker.run(raw(project_id, "steady", set={"plan": "pro"}))
    before = PERSONS_POSTGRES_STATEMENTS._value.get()
    await worker.run(*(raw(project_id, "steady", set={"plan": "pro"}) for _ in range(50)))
    assert PERSONS_POSTGRES_STATEMENTS._value.get() == before


async def test_properties_over_the_cap_are_refused_with_a_reason(pool: asyncpg.Pool, project_id: int) -> None:
    worker = Persons(pool)
    before = PERSONS_REFUSED.labels("properties_too_large")._value.get()
    [event] = await worker.run(raw(project_id, "big", set={"blob": "x" * MAX_BYTES}))
    assert event["person_properties"] == {}
    assert PERSONS_REFUSED.labels("properties_too_large")._value.get() == before + 1


async def test_two_workers_racing_on_new_ids_create_one_person_per_id(
    pool: asyncpg.Pool, project_id: int
) -> None:
    ids = [f"race-{i}" for i in range(300)]
    workers = [Persons(pool) for _ in range(4)]
    results = await asyncio.gather(
        *(
            w.run(*(raw(project_id, d) for d in (ids if n % 2 else reversed(ids))))
            for n, w in enumerate(workers)
        )
    )
    mapping = [{e["distinct_id"]: e["person_id"] for e in events} for events in results]
    assert all(m == mapping[0] for m in mapping[1:])
    assert await persons_count(pool, project_id) == 300


async def test_bad_messages_are_dead_lettered_with_a_reason(pool: asyncpg.Pool, project_id: int) -> None:
    batch = [
        Message("events_raw", 0, 0, None, b"{not json"),
        Message("events_raw", 0, 1, None, b"[1, 2]"),
        Message("events_raw", 0, 2, None, orjson.dumps({"project_id": project_id, "distinct_id": ""})),
        Message("events_raw", 0, 3, None, orjson.dumps({"project_id": "7", "distinct_id": "x"})),
        raw(987654321, "x"),
        raw(project_id, "undefined"),
        raw(project_id, "dave"),
        raw(project_id, "erin", uuid="not-a-uuid"),
        raw(project_id, "erin", timestamp="yesterday"),
        raw(project_id, "erin", properties=[1]),
    ]
    results = await Persons(pool).process(batch)
    assert [(r.reason, r.error) if isinstance(r, DeadLetter) else "ok" for r in results] == [
        ("invalid_json", "unexpected character, expected a string key: line 1 column 2 (char 1)"),
        ("not_an_object", "the value is a JSON list, not an object"),
        ("missing_field", "event: missing or empty"),
        ("invalid_field", "project_id: missing or not a non-negative integer"),
        ("unknown_project", "project 987654321 does not exist"),
        ("junk_distinct_id", "distinct id 'undefined' is a placeholder, not an id"),
        "ok",
        ("invalid_field", "uuid: not a UUID"),
        ("invalid_field", "timestamp: not an ISO-8601 time with a zone within years 1-9999 UTC"),
        ("invalid_field", "properties: not an object"),
    ]


async def test_junk_anonymous_id_is_never_merged(pool: asyncpg.Pool, project_id: int) -> None:
    worker = Persons(pool)
    await worker.run(raw(project_id, "real-user"))
    before = PERSONS_REFUSED.labels("junk_id")._value.get()
    await worker.run(identify(project_id, "real-user", "null"))
    assert PERSONS_REFUSED.labels("junk_id")._value.get() == before + 1
    assert await person_of(pool, project_id, "null") is None


CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"


async def test_enrichment_blocks_validates_and_describes(pool: asyncpg.Pool, project_id: int) -> None:
    await pool.execute("INSERT INTO blocked_events (project_id, event) VALUES ($1, 'spam')", project_id)
    schema = {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}
    await pool.execute(
        "INSERT INTO event_schemas (project_id, event, json_schema) VALUES ($1, 'purchase', $2)",
        project_id,
        schema,
    )
    worker = Persons(pool, Enrichment(RulesCache(pool, refresh_seconds=60), GeoIP.open("")))
    results = await worker.process(
        [
            raw(project_id, "e1", "spam"),
            raw(project_id, "e1", "purchase", properties={"amount": "lots"}),
            raw(project_id, "e1", "purchase", properties={"amount": 3, "$raw_user_agent": CHROME}),
        ]
    )
    assert isinstance(results[0], Drop) and results[0].reason == "blocked_event"
    assert isinstance(results[1], DeadLetter) and results[1].reason == "schema_invalid"
    assert "amount must be number" in results[1].error
    assert isinstance(results[2], Ok)
    [event] = [orjson.loads(r.value) for t, r in results[2].value if t == EVENTS]
    assert event["properties"]["$browser"] == "Chrome" and event["properties"]["$os"] == "Windows"


async def test_enrichment_config_changes_apply_without_a_restart(pool: asyncpg.Pool, project_id: int) -> None:
    worker = Persons(pool, Enrichment(RulesCache(pool, refresh_seconds=0.2), None))
    [first] = await worker.process([raw(project_id, "e2", "noise")])
    assert isinstance(first, Ok)
    await pool.execute("INSERT INTO blocked_events (project_id, event) VALUES ($1, 'noise')", project_id)
    await asyncio.sleep(0.3)
    [second] = await worker.process([raw(project_id, "e2", "noise")])
    assert isinstance(second, Drop) and second.reason == "blocked_event"


async def test_a_new_id_keeps_its_own_person_at_version_0_and_a_joining_id_is_written_at_version_1(
    pool: asyncpg.Pool, project_id: int
) -> None:
    """Queries look up only distinct ids above version 0; the others' events all carry their own person."""
    worker = Persons(pool)
    personless = {"$process_person_profile": False}
    [early] = await worker.run(raw(project_id, "visitor", properties=personless))
    await worker.run(raw(project_id, "member"))
    out = await worker.outputs(identify(project_id, "member", "visitor"))
    versions = {r["distinct_id"]: (r["person_id"], r["version"]) for r in out[PERSON_DISTINCT_IDS]}
    member = str(personless_id(project_id, "member"))
    assert versions == {"visitor": (member, 1)}, "visitor's earlier events carry another id"
    assert early["person_id"] == str(personless_id(project_id, "visitor"))
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT distinct_id, person_id::text AS person, version FROM person_distinct_ids"
            " WHERE project_id = $1 ORDER BY distinct_id",
            project_id,
        )
    assert [tuple(r) for r in rows] == [("member", member, 0), ("visitor", member, 1)]

"""Traffic for the fault tests: realistic PostHog events with identity links, senders that retry like an
SDK, and the expected partition of distinct ids into persons computed from the events alone.

    traffic = build(seed=7, events=20_000)
    sender = Sender(stack.url("CAPTURE_PORT", "/batch/"), traffic.batches(500))
    await sender.run(concurrency=4)
    assert partition(stored_pairs) == traffic.partition

The events come from `bench.generate` (sessions, anonymous browsing, merged users, personless devices,
duplicate sends, hostile names and properties), turned into what an SDK sends: `$identify` with
`$anon_distinct_id` where a user's anonymous browsing ends, `$merge_dangerously` where the generator merged
two users, `$create_alias` for the personless devices it linked to a user (every device event carries
`$process_person_profile: false`), and a few events with a placeholder distinct id that persons parks.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.generate import generate
from tests.faults.stack import TOKEN, Stack

JUNK_IDS = ("undefined", "null", "anonymous")  # distinct ids persons parks as junk_distinct_id
LINKS = ("$identify", "$merge_dangerously", "$create_alias")


@dataclass
class Traffic:
    events: list[dict[str, Any]]
    junk: set[str]  # uuids of the events with a placeholder distinct id: parked, never stored

    def batches(self, size: int) -> list[list[dict[str, Any]]]:
        return [self.events[i : i + size] for i in range(0, len(self.events), size)]

    @property
    def uuids(self) -> set[str]:
        return {e["uuid"] for e in self.events}

    @property
    def partition(self) -> frozenset[frozenset[str]]:
        return expected_partition(self.events)


def build(seed: int, events: int, persons: int = 10_000, junk_share: float = 0.001) -> Traffic:
    """About `events` events (the generator's plus its ~5% duplicate sends, the links and the junk)."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=31)
    data = generate(seed, 1, persons, 30, int(events * 0.93), start)
    frame = data.events
    out: list[dict[str, Any]] = [
        {"event": name, "distinct_id": distinct_id, "uuid": uuid, "timestamp": stamp.isoformat(),
         "properties": orjson.loads(properties)}
        for name, distinct_id, uuid, stamp, properties in zip(
            frame["event"], frame["distinct_id"], frame["uuid"], frame["timestamp"], frame["properties"],
            strict=True,
        )
    ]  # fmt: skip
    for event in out:
        if event["distinct_id"].startswith("device-"):
            event["properties"]["$process_person_profile"] = False

    # where each id is last mapped (the generator's person_distinct_ids) -> the links an SDK would send
    ids = data.person_distinct_ids.sort_values("version").drop_duplicates("distinct_id", keep="last")
    current = dict(zip(ids["distinct_id"], ids["person_id"], strict=True))
    versions = dict(zip(ids["distinct_id"], ids["version"], strict=True))
    user_of_person = {p: d for d, p in current.items() if d.startswith("user-") and versions[d] == 0}
    first_as_user: dict[str, int] = {}
    for index, event in enumerate(out):
        first_as_user.setdefault(event["distinct_id"], index)
    inserts: list[tuple[int, dict[str, Any]]] = []  # (index to insert before, event)
    for distinct_id, person in current.items():
        kind, number = distinct_id.split("-")
        if kind == "anon":
            user = f"user-{number}"
            at = first_as_user.get(user, rng.randrange(len(out) + 1))
            inserts.append((at, _link(rng, "$identify", user, "$anon_distinct_id", distinct_id, out, at)))
        elif kind == "user" and versions[distinct_id] > 0:  # merged into another user's person
            at = rng.randrange(len(out) + 1)
            inserts.append(
                (at, _link(rng, "$merge_dangerously", user_of_person[person], "alias", distinct_id, out, at))
            )
        elif kind == "device":
            at = rng.randrange(len(out) + 1)
            inserts.append((at, _link(rng, "$create_alias", user_of_person[person], "alias", distinct_id, out, at)))  # fmt: skip
    junk: set[str] = set()
    for _ in range(round(len(out) * junk_share)):
        at = rng.randrange(len(out) + 1)
        event = _event(rng, "$pageview", rng.choice(JUNK_IDS), {"$pathname": "/"}, out, at)
        junk.add(event["uuid"])
        inserts.append((at, event))
    for at, event in sorted(inserts, key=lambda pair: pair[0], reverse=True):
        out.insert(at, event)
    traffic = Traffic(out, junk)
    expected = traffic.partition
    named = set().union(*expected)  # the generator's users without an event are named by no event
    generated = partition((d, p) for d, p in current.items() if d in named)
    assert expected == generated, "the links sent do not make the generator's persons"
    return traffic


def _event(rng: random.Random, name: str, distinct_id: str, properties: dict[str, Any],
           out: Sequence[dict[str, Any]], at: int) -> dict[str, Any]:  # fmt: skip
    """An event timed like its neighbour in the stream, with a uuid of the seeded RNG."""
    stamp = out[min(at, len(out) - 1)]["timestamp"]
    uuid = str(UUID(int=rng.getrandbits(128), version=4))
    return {"event": name, "distinct_id": distinct_id, "uuid": uuid, "timestamp": stamp,
            "properties": properties}  # fmt: skip


def _link(rng: random.Random, name: str, target: str, key: str, source: str, out: Sequence[dict[str, Any]],
          at: int) -> dict[str, Any]:  # fmt: skip
    return _event(rng, name, target, {key: source}, out, at)


def expected_partition(events: Iterable[dict[str, Any]]) -> frozenset[frozenset[str]]:
    """The distinct ids grouped by person, from the events alone: every distinct id of an event that
    processes a person is one, and each link joins its two ids (union-find). Independent of
    workers.identity; it holds for these events because no link's source is ever another identified
    person except through `$merge_dangerously`, so no link is refused and the order does not matter."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for event in events:
        distinct_id, properties = event["distinct_id"], event["properties"]
        if distinct_id in JUNK_IDS or properties.get("$process_person_profile") is False:
            continue
        find(distinct_id)
        source = properties.get("$anon_distinct_id") if event["event"] == "$identify" else None
        if event["event"] in ("$merge_dangerously", "$create_alias"):
            source = properties.get("alias")
        if source:
            parent[find(source)] = find(distinct_id)
    return frozenset(frozenset(group) for group in _groups((x, find(x)) for x in list(parent)).values())


def partition(pairs: Iterable[tuple[str, str]]) -> frozenset[frozenset[str]]:
    """(distinct_id, person_id) pairs as the set of groups of distinct ids sharing a person."""
    return frozenset(frozenset(group) for group in _groups(pairs).values())


def _groups(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    for distinct_id, person in pairs:
        groups.setdefault(str(person), set()).add(distinct_id)
    return groups


@dataclass
class Answer:
    batch: int
    started: float  # time.monotonic()
    ended: float
    status: int | str  # the HTTP status, or the client error's name
    retry_after: str | None = None


@dataclass
class Sender:
    """PostHog /batch/ requests of pre-encoded batches from concurrent tasks, like SDKs: a request that
    fails (no connection, reset, timeout) or is answered 503 is sent again after a pause (Retry-After,
    capped); only the events of a 200 count as accepted. Any other status is recorded and not retried."""

    url: str
    batches: Sequence[Sequence[dict[str, Any]]]
    token: str = TOKEN
    rate: float | None = None  # events a second, all tasks together: batch k is not sent before its turn
    request_timeout: float = 30.0
    max_pause: float = 1.0
    accepted: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    unexpected: list[tuple[int, int, bytes]] = field(default_factory=list)  # (batch, status, body)

    def __post_init__(self) -> None:
        self._bodies = [orjson.dumps({"api_key": self.token, "batch": list(b)}) for b in self.batches]
        self._next = 0
        self._turns = [0.0] * len(self.batches)  # seconds from the start
        for k in range(1, len(self.batches)):
            self._turns[k] = self._turns[k - 1] + len(self.batches[k - 1]) / self.rate if self.rate else 0.0
        self._started = 0.0

    @property
    def statuses(self) -> Counter[int | str]:
        return Counter(a.status for a in self.answers)

    async def run(self, concurrency: int = 4, deadline_seconds: float = 600.0) -> None:
        """Send every batch (each until a 200 or an unexpected status); TimeoutError past the deadline."""
        self._started = time.monotonic()
        async with asyncio.timeout(deadline_seconds):
            await asyncio.gather(*(self._task() for _ in range(concurrency)))

    async def _task(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while self._next < len(self._bodies):
                index, self._next = self._next, self._next + 1
                await asyncio.sleep(self._started + self._turns[index] - time.monotonic())
                await self._send(http, index, headers)

    async def _send(self, http: aiohttp.ClientSession, index: int, headers: dict[str, str]) -> None:
        pause = 0.1
        while True:
            started = time.monotonic()
            retry_after = None
            try:
                async with http.post(self.url, data=self._bodies[index], headers=headers) as response:
                    status: int | str = response.status
                    retry_after = response.headers.get("Retry-After")
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                status, body = type(exc).__name__, b""
            self.answers.append(Answer(index, started, time.monotonic(), status, retry_after))
            if status == 200:
                self.accepted.extend(e["uuid"] for e in self.batches[index])
                return
            if isinstance(status, int) and status != 503:
                self.unexpected.append((index, status, body[:500]))
                return
            wait = float(retry_after) if retry_after else pause
            await asyncio.sleep(min(wait, self.max_pause))
            pause = min(pause * 2, self.max_pause)


# what the tests read back -------------------------------------------------------------------------------


async def stored_at_least(stack: Stack, n: int) -> bool:
    """At least n rows in `events` (without FINAL: cheap, and duplicates count); False while the writer
    (and its query API) is down."""
    try:
        rows = await stack.sql("SELECT count() AS n FROM events")
    except (aiohttp.ClientError, OSError):
        return False
    return int(rows[0]["n"]) >= n


def assert_same(what: str, got: list[str], want: list[str]) -> None:
    """got == want, or a short account: how many are missing, extra and doubled, and a few of each."""
    if got != want:
        doubled = [x for x, n in Counter(got).items() if n > 1]
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise AssertionError(
            f"{what}: {len(got)} instead of {len(want)}: {len(missing)} missing {missing[:5]},"
            f" {len(extra)} extra {extra[:5]}, {len(doubled)} doubled {doubled[:5]}"
        )


async def postgres_ids(dsn: str, project_id: int = 1) -> tuple[dict[str, str], set[str]]:
    """Postgres's distinct id -> person, and its persons, of the project (the Stack's is the first)."""
    conn = await asyncpg.connect(dsn)
    try:
        ids = await conn.fetch(
            "SELECT distinct_id, person_id::text AS person FROM person_distinct_ids WHERE project_id = $1",
            project_id,
        )
        persons = await conn.fetch("SELECT id::text AS id FROM persons WHERE project_id = $1", project_id)
    finally:
        await conn.close()
    return {r["distinct_id"]: r["person"] for r in ids}, {r["id"] for r in persons}


async def clickhouse_ids(stack: Stack, project_id: int = 1) -> tuple[dict[str, str], set[str]]:
    """ClickHouse's distinct id -> person (the row of the highest version), and its live persons."""
    ids = await stack.sql(
        "SELECT distinct_id, toString(argMax(person_id, version)) AS person FROM person_distinct_ids"
        f" WHERE project_id = {int(project_id)} GROUP BY distinct_id"
    )
    persons = await stack.sql(
        f"SELECT toString(id) AS id FROM persons FINAL WHERE project_id = {int(project_id)} AND is_deleted = 0"
    )
    return {r["distinct_id"]: r["person"] for r in ids}, {r["id"] for r in persons}


async def dead_letters(dsn: str) -> list[tuple[str, str]]:
    """(uuid, reason) of every message the dlq worker indexed."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT uuid, reason FROM dead_letters")
    finally:
        await conn.close()
    return [(r["uuid"], r["reason"]) for r in rows]


async def dead_letter_reasons(bootstrap: str, partitions: int = 4) -> list[str]:
    """The `reason` header of every message in the `dead_letter` topic, read to its end."""
    topic = [TopicPartition("dead_letter", p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    reasons: list[str] = []
    try:
        consumer.assign(topic)
        ends = await consumer.end_offsets(topic)
        for tp in topic:
            consumer.seek(tp, 0)
        async with asyncio.timeout(30):
            while [tp for tp in topic if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(*topic, timeout_ms=200)).values():
                    reasons += [dict(r.headers).get("reason", b"").decode() for r in records]
    finally:
        await consumer.stop()
    return reasons

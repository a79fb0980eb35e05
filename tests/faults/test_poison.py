"""The poison corpus (issue 8): capture, persons, the writer and the dlq worker running for real, fed what
no store can hold and what breaks each topic's contract, with good events all around.

Through capture: U+0000 and lone surrogates (raw `\\u0000`, `\\ud83d`, `\\udc00` escapes in the body bytes)
in every field a client sends, property operations on the wrong types, too many keys, too deep, too big
numbers, out-of-range times. A 200 means every event of the request was acknowledged by Kafka; a 4xx that
nothing of the request was produced; never a 5xx. Straight into each input topic: bytes that are not JSON,
JSON that is not an object, every field of the wrong type. Then, exactly: every good event is stored once;
every accepted poison event is stored sanitized (U+FFFD where the NUL or the surrogate was) or parked with
the reason the contract names; every message written into a topic is parked with its reason (a good one
stored); nothing else is parked; no worker exited.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.components import Tansu, wait_until
from tests.faults.stack import TOKEN, Stack
from workers.capture.amplitude import INSERT_ID_NAMESPACE

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.clickhouse]

WORKERS = ("capture", "persons", "writer", "dlq")
FFFD = "\ufffd"
NUL, HIGH, LOW = "\x00", "\ud83d", "\udc00"  # json.dumps writes these as the escapes \u0000 \ud83d \udc00
ESCAPES = (b"\\u0000", b"\\ud83d", b"\\udc00")
RECEIVED_AT = "<received_at>"  # an expected event time: the event's own received_at
RAW_1E400 = "<1e400>"  # written into the body as the number 1e400, which json.dumps cannot write
STAGE_OF = {"events_raw": "persons", "events": "writer", "persons": "writer", "person_distinct_ids": "writer"}
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def body_of(payload: object) -> bytes:
    """The request body: ASCII JSON, so every U+0000 and lone surrogate is written as a raw escape."""
    return json.dumps(payload, ensure_ascii=True).encode().replace(f'"{RAW_1E400}"'.encode(), b"1e400")


def nested(depth: int) -> object:
    """A value of `depth` nested containers (a scalar is depth 0)."""
    value: object = 1
    for n in range(depth):
        value = [value] if n % 2 else {"d": value}
    return value


# ---- what each case expects ---------------------------------------------------------------------------

Check = tuple[str, tuple[str, ...], object]  # (column, keys into its JSON, expected value)


@dataclass
class Poison:
    """An event of a request that capture should accept: stored (with `checks` on its ClickHouse row) or
    parked by `stage` with `reason`."""

    uuid: str
    outcome: str  # "stored" or a dead-letter reason
    checks: Sequence[Check] = ()
    stage: str = "persons"


@dataclass
class Case:
    name: str
    path: str  # /batch/ (PostHog) or /2/httpapi (Amplitude)
    payload: dict[str, Any]
    status: int
    poison: list[Poison] = field(default_factory=list)
    good: list[str] = field(default_factory=list)  # uuids of the request's good events
    persons: dict[str, dict[str, object]] = field(default_factory=dict)  # distinct id -> Postgres properties
    links: list[tuple[str, str]] = field(default_factory=list)  # distinct ids of one person in Postgres
    answer: int | None = None


class Corpus:
    def __init__(self, project_id: int) -> None:
        self.project_id = project_id
        self.cases: list[Case] = []
        self.n = 0

    def _next(self) -> int:
        self.n += 1
        return self.n

    def good_posthog(self) -> dict[str, Any]:
        n = self._next()
        return {"event": "good", "distinct_id": f"good-{n % 5}", "uuid": str(uuid.uuid4()),
                "timestamp": iso(NOW + timedelta(seconds=n)), "properties": {"n": n}}  # fmt: skip

    def good_amplitude(self) -> tuple[dict[str, Any], str]:
        n = self._next()
        user = f"good-amplitude-{n % 5}"
        event = {"event_type": "good", "user_id": user, "insert_id": f"insert-{n}",
                 "time": int((NOW + timedelta(seconds=n)).timestamp() * 1000)}  # fmt: skip
        return event, self.amplitude_uuid(user, f"insert-{n}")

    def amplitude_uuid(self, distinct_id: str, insert_id: str) -> str:
        return str(uuid.uuid5(INSERT_ID_NAMESPACE, f"{self.project_id}:{distinct_id}:{insert_id}"))

    def posthog(
        self,
        name: str,
        event: dict[str, Any],
        status: int = 200,
        outcome: str = "stored",
        checks: Sequence[Check] = (),
        **expect: Any,
    ) -> None:
        """A PostHog /batch/ request: the poison event between two good ones."""
        event = {"uuid": str(uuid.uuid4()), "timestamp": iso(NOW), **event}
        before, after = self.good_posthog(), self.good_posthog()
        poison = [Poison(event["uuid"], outcome, checks)] if isinstance(event["uuid"], str) else []
        payload = {"api_key": TOKEN, "batch": [before, event, after]}
        self.cases.append(
            Case(name, "/batch/", payload, status, poison, [before["uuid"], after["uuid"]], **expect)
        )

    def amplitude(
        self,
        name: str,
        event: dict[str, Any],
        distinct_id: str,
        status: int = 200,
        checks: Sequence[Check] = (),
        **expect: Any,
    ) -> None:
        """An Amplitude /2/httpapi request: the poison event (`distinct_id`: its own, sanitized) and a good
        one."""
        insert_id = f"poison-{self._next()}"
        event = {"insert_id": insert_id, "time": int(NOW.timestamp() * 1000), **event}
        good, good_uuid = self.good_amplitude()
        poison = Poison(self.amplitude_uuid(distinct_id, insert_id), "stored", checks)
        payload = {"api_key": TOKEN, "events": [event, good]}
        self.cases.append(Case(name, "/2/httpapi", payload, status, [poison], [good_uuid], **expect))


def capture_corpus(corpus: Corpus) -> None:
    ph, amp = corpus.posthog, corpus.amplitude
    anon, ident = "$anon_distinct_id", "$identify"
    # fmt: off
    ph("event name U+0000", {"event": f"sign{NUL}up", "distinct_id": "p-event-nul"},
       checks=[("event", (), f"sign{FFFD}up")])
    ph("event name lone \\ud83d", {"event": f"click{HIGH}", "distinct_id": "p-event-high"},
       checks=[("event", (), f"click{FFFD}")])
    ph("event name lone \\udc00", {"event": f"{LOW}view", "distinct_id": "p-event-low"},
       checks=[("event", (), f"{FFFD}view")])
    ph("distinct_id U+0000", {"event": "e", "distinct_id": f"p-id{NUL}nul"},
       checks=[("distinct_id", (), f"p-id{FFFD}nul")], persons={f"p-id{FFFD}nul": {}})
    ph("distinct_id lone \\ud83d", {"event": "e", "distinct_id": f"p-id-{HIGH}"},
       checks=[("distinct_id", (), f"p-id-{FFFD}")], persons={f"p-id-{FFFD}": {}})
    ph("distinct_id only U+0000", {"event": "e", "distinct_id": NUL},
       checks=[("distinct_id", (), FFFD)], persons={FFFD: {}})
    ph("$identify $anon_distinct_id U+0000",
       {"event": ident, "distinct_id": "p-ident-nul", "properties": {anon: f"anon{NUL}1"}},
       checks=[("properties", (anon,), f"anon{FFFD}1")], links=[("p-ident-nul", f"anon{FFFD}1")])
    ph("$identify $anon_distinct_id lone \\udc00",
       {"event": ident, "distinct_id": "p-ident-low", "properties": {anon: f"anon-{LOW}"}},
       checks=[("properties", (anon,), f"anon-{FFFD}")], links=[("p-ident-low", f"anon-{FFFD}")])
    ph("$set key U+0000",
       {"event": "e", "distinct_id": "p-set-key", "properties": {"$set": {f"pl{NUL}an": "pro"}}},
       checks=[("set", (f"pl{FFFD}an",), "pro")], persons={"p-set-key": {f"pl{FFFD}an": "pro"}})
    ph("$set value U+0000", {"event": "e", "distinct_id": "p-set-nul", "$set": {"name": f"Ada{NUL}Lovelace"}},
       checks=[("set", ("name",), f"Ada{FFFD}Lovelace"),
               ("person_properties", ("name",), f"Ada{FFFD}Lovelace")],
       persons={"p-set-nul": {"name": f"Ada{FFFD}Lovelace"}})
    ph("$set value lone \\ud83d",
       {"event": "e", "distinct_id": "p-set-high", "$set": {"emoji": f"hi {HIGH}"}},
       checks=[("set", ("emoji",), f"hi {FFFD}")], persons={"p-set-high": {"emoji": f"hi {FFFD}"}})
    ph("$set_once key U+0000, value lone \\udc00",
       {"event": "e", "distinct_id": "p-set-once", "$set_once": {f"fir{NUL}st": f"a{LOW}"}},
       checks=[("set_once", (f"fir{FFFD}st",), f"a{FFFD}")],
       persons={"p-set-once": {f"fir{FFFD}st": f"a{FFFD}"}})
    ph("$set a string", {"event": "e", "distinct_id": "p-set-str", "$set": "name=Ada"}, status=400)
    ph("properties.$set a list", {"event": "e", "distinct_id": "p-set-list", "properties": {"$set": ["a"]}},
       status=400)
    many = {f"key-{i}": i for i in range(5000)}
    ph("5,000 $set keys", {"event": "e", "distinct_id": "p-set-5000", "$set": many},
       checks=[("set", ("key-4999",), 4999)], persons={"p-set-5000": many})
    ph("nesting 64 deep (the limit)",
       {"event": "e", "distinct_id": "p-deep-64", "properties": {"x": nested(62)}})
    ph("nesting 65 deep",
       {"event": "e", "distinct_id": "p-deep-65", "properties": {"x": nested(63)}}, status=400)
    ph("2^70 and -2^70",
       {"event": "e", "distinct_id": "p-big", "properties": {"big": 2**70, "small": -(2**70)},
        "$set": {"big": 2**70}},
       checks=[("properties", ("big",), float(2**70)), ("properties", ("small",), -float(2**70))],
       persons={"p-big": {"big": float(2**70)}})
    ph("1e400 (past the float range)",
       {"event": "e", "distinct_id": "p-inf", "properties": {"inf": RAW_1E400}}, status=400)
    ph("timestamp year 1", {"event": "e", "distinct_id": "p-year-1", "timestamp": "0001-01-01T00:00:00Z"},
       checks=[("time", (), "0001-01-01 00:00:00.000000")])
    ph("timestamp year 9999 (over 23 h ahead: received_at)",
       {"event": "e", "distinct_id": "p-year-9999", "timestamp": "9999-12-31T23:59:59Z"},
       checks=[("time", (), RECEIVED_AT)])
    ph("objects for $session_id, $current_url, $browser",
       {"event": "e", "distinct_id": "p-objects",
        "properties": {"$session_id": {"id": 1}, "$current_url": ["https://x"], "$browser": {"name": "x"}}},
       checks=[("properties", ("$session_id", "id"), 1), ("properties", ("$current_url",), ["https://x"]),
               ("properties", ("$browser", "name"), "x")])
    ph("$current_url U+0000, $session_id lone \\ud83d",
       {"event": "e", "distinct_id": "p-url-nul",
        "properties": {"$current_url": f"https://x/{NUL}", "$session_id": f"s{HIGH}"}},
       checks=[("mat_current_url", (), f"https://x/{FFFD}"), ("session_id", (), f"s{FFFD}")])
    ph("uuid U+0000", {"event": "e", "distinct_id": "p-uuid", "uuid": NUL + str(uuid.uuid4())[1:]},
       status=400)
    # under capture's 1 MiB per event, over Kafka's request size once persons adds the person's properties
    ph("1 MiB event with a 200 KB $set",
       {"event": "e", "distinct_id": "p-huge", "properties": {"blob": "b" * 800_000},
        "$set": {"huge": "h" * 200_000}},
       outcome="kafka_refused")
    ph("distinct_id 'undefined'", {"event": "e", "distinct_id": "undefined"}, outcome="junk_distinct_id")
    ph("distinct_id of 201 characters", {"event": "e", "distinct_id": "x" * 201}, outcome="junk_distinct_id")

    def props(user: str, operations: object) -> dict[str, Any]:
        return {"event_type": "e", "user_id": user, "user_properties": operations}

    amp("amplitude event_type U+0000, user_id lone \\ud83d",
        {"event_type": f"play{NUL}", "user_id": f"a-user-{HIGH}"}, f"a-user-{FFFD}",
        checks=[("event", (), f"play{FFFD}"), ("distinct_id", (), f"a-user-{FFFD}")])
    amp("amplitude user_id U+0000 + device_id lone \\udc00",
        {"event_type": "e", "user_id": f"a-link{NUL}user", "device_id": f"a-link-device{LOW}"},
        f"a-link{FFFD}user", checks=[("properties", ("$device_id",), f"a-link-device{FFFD}")],
        links=[(f"a-link{FFFD}user", f"a-link-device{FFFD}")])
    amp("amplitude $set key and value U+0000",
        props("a-set-nul", {"$set": {f"pl{NUL}an": f"a{NUL}b"}}), "a-set-nul",
        checks=[("person_properties", (f"pl{FFFD}an",), f"a{FFFD}b")],
        persons={"a-set-nul": {f"pl{FFFD}an": f"a{FFFD}b"}})
    amp("amplitude $setOnce lone surrogates",
        props("a-set-once", {"$setOnce": {f"src{HIGH}": f"x{LOW}"}}), "a-set-once",
        persons={"a-set-once": {f"src{FFFD}": f"x{FFFD}"}})
    amp("amplitude $add key lone \\udc00",
        props("a-add-low", {"$add": {f"vis{LOW}its": 2}}), "a-add-low",
        persons={"a-add-low": {f"vis{FFFD}its": 2}})
    amp("amplitude $append U+0000",
        props("a-append", {"$append": {"tags": f"t{NUL}ag"}}), "a-append",
        persons={"a-append": {"tags": [f"t{FFFD}ag"]}})
    amp("amplitude $add of a non-number",
        props("a-add-str", {"$set": {"score": 5}, "$add": {"score": "lots", "other": {"a": 1}}}), "a-add-str",
        persons={"a-add-str": {"score": 5, "other": None}})
    amp("amplitude $set a string",
        props("a-set-str", {"$set": "x", "plan": f"p{NUL}"}), "a-set-str",
        persons={"a-set-str": {"plan": f"p{FFFD}"}})
    amp("amplitude user_properties a string", props("a-up-str", "x"), "a-up-str", status=400)
    amp("amplitude $add past 64 bits",
        props("a-add-wide", {"$set": {"n": 2**64 - 1}, "$add": {"n": 1}}), "a-add-wide",
        persons={"a-add-wide": {"n": float(2**64)}})
    amp("amplitude $add of a 30-digit string",
        props("a-add-digits", {"$add": {"n": "1" * 30}}), "a-add-digits",
        persons={"a-add-digits": {"n": float("1" * 30)}})
    amp("amplitude $add 2^70",
        props("a-add-big", {"$add": {"n": 2**70}}), "a-add-big",
        persons={"a-add-big": {"n": float(2**70)}})
    # fmt: on


# ---- straight into the input topics ---------------------------------------------------------------------

MISSING = object()  # a field left out of a message


@dataclass
class Direct:
    """A message written straight into a topic: parked by the topic's stage with `outcome` as the reason,
    or "stored": an event (`uuid`) in events, with `checks` on its row; else `where` matches one row of
    `table`."""

    name: str
    topic: str
    value: bytes | None
    outcome: str
    key: bytes | None = None
    table: str = "events"
    where: str = ""
    checks: Sequence[Check] = ()
    partition: int = -1
    offset: int = -1
    uuid: str | None = None  # an events_raw or events message's, stored in events


def _fill(message: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    message.update(fields)
    return {k: v for k, v in message.items() if v is not MISSING}


def raw_event(project_id: int, /, **fields: Any) -> dict[str, Any]:
    """An events_raw message as capture writes it (workers/capture/posthog.py `_event`)."""
    message = {
        "uuid": str(uuid.uuid4()), "event": "direct", "distinct_id": f"direct-{uuid.uuid4().hex[:8]}",
        "project_id": project_id, "token": TOKEN, "timestamp": iso(NOW), "received_at": iso(NOW),
        "sent_at": iso(NOW), "ip": "127.0.0.1", "properties": {"$lib": "poison"}, "set": None,
        "set_once": None, "user_properties": None, "protocol": "posthog", "lib": "poison",
    }  # fmt: skip
    return _fill(message, fields)


def full_event(project_id: int, /, **fields: Any) -> dict[str, Any]:
    """An events message as persons writes it: the events_raw event with its person."""
    return _fill(raw_event(project_id, person_id=str(uuid.uuid4()), person_properties={}), fields)


def person(project_id: int, /, **fields: Any) -> dict[str, Any]:
    message = {"id": str(uuid.uuid4()), "project_id": project_id, "properties": {"direct": True},
               "is_identified": False, "created_at": iso(NOW), "version": 0, "is_deleted": False}  # fmt: skip
    return _fill(message, fields)


def distinct_id_row(project_id: int, /, **fields: Any) -> dict[str, Any]:
    message = {"project_id": project_id, "distinct_id": f"direct-{uuid.uuid4().hex[:8]}",
               "person_id": str(uuid.uuid4()), "version": 0, "is_deleted": False}  # fmt: skip
    return _fill(message, fields)


def direct_corpus(project_id: int) -> list[Direct]:
    pid = project_id
    poison: list[Direct] = []

    def put(name: str, topic: str, value: object, outcome: str, checks: Sequence[Check] = ()) -> None:
        data = value if value is None or isinstance(value, bytes) else body_of(value)
        poison.append(Direct(name, topic, data, outcome, key=f"poison-{len(poison)}".encode(), checks=checks))
        if outcome == "stored" and isinstance(value, dict):
            poison[-1].uuid = value["uuid"]

    raw, ev = "events_raw", "events"
    # fmt: off
    put("not JSON", raw, b"\x00\x01 not json {", "invalid_json")
    put("empty value", raw, b"", "invalid_json")
    put("null value (tombstone)", raw, None, "invalid_json")
    put("invalid UTF-8", raw, b'{"project_id": 1, "event": "\xff\xfe"}', "invalid_json")
    put("a JSON list", raw, [raw_event(pid)], "not_an_object")
    put("a JSON string", raw, "event", "not_an_object")
    put("{}", raw, {}, "invalid_field")
    put("project_id a string", raw, raw_event(pid, project_id=str(pid)), "invalid_field")
    put("project_id negative", raw, raw_event(pid, project_id=-1), "invalid_field")
    put("project_id 2^70", raw, raw_event(pid, project_id=2**70), "invalid_field")
    put("unknown project", raw, raw_event(987654321), "unknown_project")
    put("uuid not a UUID", raw, raw_event(pid, uuid="not-a-uuid"), "invalid_field")
    put("uuid missing", raw, raw_event(pid, uuid=MISSING), "missing_field")
    put("event a number", raw, raw_event(pid, event=42), "invalid_field")
    put("event empty", raw, raw_event(pid, event=""), "missing_field")
    put("distinct_id missing", raw, raw_event(pid, distinct_id=MISSING), "missing_field")
    put("distinct_id 'null'", raw, raw_event(pid, distinct_id="null"), "junk_distinct_id")
    put("timestamp not a time", raw, raw_event(pid, timestamp="yesterday"), "invalid_field")
    put("timestamp without a zone", raw, raw_event(pid, timestamp="2024-01-01T00:00:00"), "invalid_field")
    put("timestamp a number", raw, raw_event(pid, timestamp=1_700_000_000), "invalid_field")
    put("timestamp year 1 at +14:00 (before year 1 in UTC)", raw,
        raw_event(pid, timestamp="0001-01-01T00:00:00+14:00"), "invalid_field")
    put("received_at missing", raw, raw_event(pid, received_at=MISSING), "missing_field")
    put("properties a list", raw, raw_event(pid, properties=["a"]), "invalid_field")
    put("set a string", raw, raw_event(pid, set="a"), "invalid_field")
    put("user_properties a list", raw, raw_event(pid, user_properties=[1]), "invalid_field")
    put("token a number", raw, raw_event(pid, token=7), "invalid_field")
    put("nesting 65 deep", raw, raw_event(pid, properties={"x": nested(63)}), "too_deep")
    put("10,001 keys", raw, raw_event(pid, properties={f"k{i}": i for i in range(10_001)}), "too_many_keys")
    put("a key of 1,025 characters", raw, raw_event(pid, properties={"k" * 1025: 1}), "key_too_long")
    put("distinct_id and $set lone surrogates (raw)", raw,
        raw_event(pid, distinct_id=f"direct-{HIGH}", set={f"k{LOW}": f"v{NUL}"}), "stored",
        checks=[("distinct_id", (), f"direct-{FFFD}"), ("set", (f"k{FFFD}",), f"v{FFFD}")])  # fmt: skip

    put("not JSON", ev, b"<html>", "invalid_json")
    put("{}", ev, {}, "invalid_field")
    put("person_id missing", ev, raw_event(pid), "missing_field")
    put("person_id not a UUID", ev, full_event(pid, person_id="42"), "invalid_field")
    put("person_properties a list", ev, full_event(pid, person_properties=[]), "invalid_field")
    put("sent_at not a time", ev, full_event(pid, sent_at="soon"), "invalid_field")
    put("timestamp year 9999 at -14:00 (after 9999 in UTC)", ev,
        full_event(pid, timestamp="9999-12-31T23:00:00-14:00"), "invalid_field")
    put("uuid a number", ev, full_event(pid, uuid=12345), "invalid_field")
    put("person_properties U+0000 (raw)", ev, full_event(pid, person_properties={"n": f"a{NUL}"}), "stored",
        checks=[("person_properties", ("n",), f"a{FFFD}")])

    put("a JSON list", "persons", [], "not_an_object")
    put("id not a UUID", "persons", person(pid, id="person-1"), "invalid_field")
    put("properties a list", "persons", person(pid, properties=[1]), "invalid_field")
    put("version negative", "persons", person(pid, version=-1), "invalid_field")
    put("version missing", "persons", person(pid, version=MISSING), "invalid_field")
    put("created_at not a time", "persons", person(pid, created_at="2024-13-45"), "invalid_field")

    put("empty value", "person_distinct_ids", b"", "invalid_json")
    put("distinct_id missing", "person_distinct_ids", distinct_id_row(pid, distinct_id=MISSING),
        "missing_field")
    put("person_id not a UUID", "person_distinct_ids", distinct_id_row(pid, person_id="x"), "invalid_field")
    put("version a string", "person_distinct_ids", distinct_id_row(pid, version="1"), "invalid_field")
    put("project_id a string", "person_distinct_ids", distinct_id_row(pid, project_id="1"), "invalid_field")
    # fmt: on

    # a good message after each poison one, in the same topic
    messages: list[Direct] = []
    for n, message in enumerate(poison):
        messages.append(message)
        topic = message.topic
        if topic == "events_raw":
            good = raw_event(pid, distinct_id=f"direct-good-{n % 3}")
            messages.append(Direct("good", topic, body_of(good), "stored", uuid=good["uuid"]))
        elif topic == "events":
            good = full_event(pid)
            messages.append(Direct("good", topic, body_of(good), "stored", uuid=good["uuid"]))
        elif topic == "persons":
            good = person(pid)
            messages.append(Direct("good", topic, body_of(good), "stored", table="persons",
                                   where=f"id = '{good['id']}'"))  # fmt: skip
        else:
            good = distinct_id_row(pid)
            messages.append(Direct("good", topic, body_of(good), "stored", table="person_distinct_ids",
                                   where=f"distinct_id = '{good['distinct_id']}'"))  # fmt: skip
    return messages


# ---- the test ---------------------------------------------------------------------------------------------

EVENT_COLUMNS = ("event", "distinct_id", "person_properties", "properties", "set", "set_once", "session_id",
                 "mat_browser", "mat_current_url")  # fmt: skip
JSON_COLUMNS = ("person_properties", "properties", "set", "set_once")


async def post(http: aiohttp.ClientSession, stack: Stack, path: str, body: bytes) -> int:
    headers = {"Content-Type": "application/json"}
    async with http.post(stack.url("CAPTURE_PORT", path), data=body, headers=headers) as response:
        await response.read()
        return response.status


def check_row(row: dict[str, Any], checks: Sequence[Check]) -> None:
    for column, keys, expected in checks:
        value = row[column]
        if column in JSON_COLUMNS:
            value = orjson.loads(value)
        for key in keys:
            value = value[key]
        if expected == RECEIVED_AT:
            expected = row["received_at"]
        assert value == expected and type(value) is type(expected), (column, keys, value, expected)


async def events_by_uuid(stack: Stack, uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
    listed = ", ".join(f"'{u}'" for u in uuids)
    rows = await stack.sql(
        "SELECT toString(uuid) AS uuid, toString(timestamp) AS time, toString(received_at) AS received_at,"
        f" {', '.join(EVENT_COLUMNS)} FROM events FINAL WHERE toString(uuid) IN ({listed})"
    )
    return {row["uuid"]: row for row in rows}


async def person_failures(pg: asyncpg.Connection, project_id: int, case: Case) -> list[str]:
    """What of the case's expected persons (properties, linked distinct ids) Postgres does not hold."""
    failures = []
    for distinct_id, expected in case.persons.items():
        properties = await pg.fetchval(
            "SELECT p.properties::text FROM person_distinct_ids d JOIN persons p ON p.id = d.person_id"
            " WHERE d.project_id = $1 AND d.distinct_id = $2",
            project_id,
            distinct_id,
        )
        got = None if properties is None else {k: orjson.loads(properties).get(k) for k in expected}
        if got != expected:
            failures.append(f"{case.name}: the person of {distinct_id!r} has {str(got)[:300]}")
    for a, b in case.links:
        rows = await pg.fetch(
            "SELECT person_id FROM person_distinct_ids"
            " WHERE project_id = $1 AND distinct_id = ANY($2::text[])",
            project_id,
            [a, b],
        )
        if len(rows) != 2 or rows[0]["person_id"] != rows[1]["person_id"]:
            failures.append(f"{case.name}: {a!r} and {b!r} are not one person: {rows}")
    return failures


async def test_poison_corpus(broker: Tansu, dsn: str, tmp_path: Path) -> None:
    with Stack(tmp_path, broker.bootstrap, dsn, WORKERS) as stack:
        pg = await asyncpg.connect(dsn)
        try:
            await _poison_corpus(stack, broker, pg)
        finally:
            await pg.close()


async def _poison_corpus(stack: Stack, broker: Tansu, pg: asyncpg.Connection) -> None:
    project_id = await pg.fetchval("SELECT id FROM projects WHERE api_token = $1", TOKEN)
    corpus = Corpus(project_id)
    capture_corpus(corpus)
    good: list[str] = []  # uuids of good events in requests answered 200: stored, once
    refused: list[str] = []  # uuids of requests answered 4xx: neither stored nor parked
    escapes = dict.fromkeys(ESCAPES, 0)  # request bodies holding each raw escape

    # 1. through capture; after each case a good request
    async with aiohttp.ClientSession() as http:

        async def good_request() -> None:
            events = [corpus.good_posthog(), corpus.good_posthog()]
            assert await post(http, stack, "/batch/", body_of({"api_key": TOKEN, "batch": events})) == 200
            good.extend(e["uuid"] for e in events)

        for case in corpus.cases:
            body = body_of(case.payload)
            assert body.isascii()
            for escape in ESCAPES:
                escapes[escape] += escape in body
            case.answer = await post(http, stack, case.path, body)
            if case.answer == 200:
                good.extend(case.good)
            else:
                refused.extend([*case.good, *(p.uuid for p in case.poison)])
            await good_request()

        # 2. straight into the input topics (a good message after each), then through capture again
        direct = direct_corpus(project_id)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            for message in direct:
                sent = await producer.send_and_wait(message.topic, message.value, key=message.key)
                message.partition, message.offset = sent.partition, sent.offset
        finally:
            await producer.stop()
        for _ in range(3):
            await good_request()

    accepted = [case for case in corpus.cases if case.answer == 200]
    stored_poison = [p for case in accepted for p in case.poison if p.outcome == "stored"]
    parked_poison = [p for case in accepted for p in case.poison if p.outcome != "stored"]
    direct_events = [m.uuid for m in direct if m.outcome == "stored" and m.uuid is not None]
    direct_parked = [m for m in direct if m.outcome != "stored"]
    stored_expected = sorted(good + [p.uuid for p in stored_poison] + direct_events)
    parked_expected = len(parked_poison) + len(direct_parked)

    # 3. wait for every stage; then a little longer, for anything that should not turn up
    async def settled() -> bool:
        parked = await pg.fetchval("SELECT count(*) FROM dead_letters")
        return await stack.count() >= len(stored_expected) and parked >= parked_expected

    await wait_until(settled, timeout=60, interval=0.5)
    await asyncio.sleep(3)

    dead = {
        (r["source_topic"], r["source_partition"], r["source_offset"]): r
        for r in await pg.fetch("SELECT * FROM dead_letters ORDER BY id")
    }
    dead_by_uuid = {r["uuid"]: r for r in dead.values() if r["uuid"] is not None}
    rows = await events_by_uuid(stack, [p.uuid for p in stored_poison] + direct_events)
    table: list[tuple[str, str, str]] = []  # (case, answer, outcome)
    failures: list[str] = []

    def stored_outcome(name: str, uuid_: str, checks: Sequence[Check]) -> str:
        row = rows.get(uuid_)
        if row is None:
            failures.append(f"{name}: {uuid_} is not stored")
            return "NOT STORED"
        try:
            check_row(row, checks)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
            return "stored WRONG"
        return "stored, sanitized" if any(FFFD in repr(check) for check in checks) else "stored"

    def parked_outcome(name: str, parked: asyncpg.Record | None, stage: str, reason: str) -> str:
        got = f"{parked['stage']}/{parked['reason']}" if parked is not None else "nothing"
        if got != f"{stage}/{reason}":
            failures.append(f"{name}: parked {got}, expected {stage}/{reason}")
        return f"parked {got}"

    for case in corpus.cases:
        outcomes = []
        if case.answer != case.status:
            failures.append(f"{case.name}: answered {case.answer}, expected {case.status}")
        if case.answer == 200:
            for p in case.poison:
                if p.outcome == "stored":
                    outcomes.append(stored_outcome(case.name, p.uuid, p.checks))
                else:
                    outcomes.append(parked_outcome(case.name, dead_by_uuid.get(p.uuid), p.stage, p.outcome))
            person = await person_failures(pg, project_id, case)
            failures.extend(person)
            if case.persons or case.links:
                outcomes.append("person WRONG" if person else "person ok")
        table.append((f"capture {case.name}", str(case.answer), ", ".join(outcomes) or "nothing produced"))

    for m in direct:
        name = f"{m.topic} {m.name}"
        if m.outcome != "stored":
            parked = dead.get((m.topic, m.partition, m.offset))
            outcome = parked_outcome(name, parked, STAGE_OF[m.topic], m.outcome)
            if parked is not None and bytes(parked["value"]) != (m.value or b""):
                failures.append(f"{name}: the dead letter's value is not the original bytes")
        elif m.uuid is not None:
            outcome = stored_outcome(name, m.uuid, m.checks)
        elif await stack.count(m.table, m.where) == 1:
            outcome = "stored"
        else:
            outcome = "NOT STORED"
            failures.append(f"{name}: no row in {m.table} where {m.where}")
        if m.name != "good":  # the good ones are counted below, not listed
            table.append((name, "-", outcome))

    stored = await stack.stored_uuids()
    copies = await stack.sql(
        "SELECT toString(uuid) AS uuid, count() AS n FROM events GROUP BY uuid HAVING n > 1"
    )
    direct_poison_stored = sum(1 for m in direct if m.outcome == "stored" and m.name != "good")
    print(f"\n{'case':<70} {'answer':<6} outcome")
    for name, answer, outcome in table:
        print(f"{name[:70]:<70} {answer:<6} {outcome}")
    print(
        f"\nthrough capture: {len(corpus.cases)} requests ({sum(escapes.values())} raw escapes:"
        f" {', '.join(f'{e.decode()} in {n}' for e, n in escapes.items())}), {len(accepted)} answered 200,"
        f" {len(corpus.cases) - len(accepted)} 4xx, 0 5xx; their poison events {len(stored_poison)} stored,"
        f" {len(parked_poison)} parked; {len(good)} good events in requests answered 200"
        f"\nstraight into topics: {len(direct_parked) + direct_poison_stored} poison messages"
        f" ({len(direct_parked)} parked, {direct_poison_stored} stored sanitized or clamped),"
        f" {len(direct) - len(direct_parked) - direct_poison_stored} good ones"
        f"\nevents stored {len(stored)} (expected {len(stored_expected)}); dead_letters {len(dead)}"
        f" (expected {parked_expected})"
    )

    assert len(corpus.cases) >= 20 and len(direct_parked) >= 10 and all(escapes.values())
    assert not failures, "\n".join(failures)
    # every good event and every poison event meant to be stored, once; nothing of a refused request
    missing, extra = set(stored_expected) - set(stored), set(stored) - set(stored_expected)
    assert stored == stored_expected, (sorted(missing), sorted(extra))
    assert copies == []
    assert not set(refused) & (set(stored) | set(dead_by_uuid))
    # exactly the poison parked: nothing good
    assert len(dead) == parked_expected, sorted(
        (r["stage"], r["reason"], r["source_topic"]) for r in dead.values()
    )

    # ClickHouse holds the persons and distinct ids Postgres holds (besides the good ones written straight
    # into persons and person_distinct_ids): no person change was lost with a parked event
    injected = [orjson.loads(m.value or b"") for m in direct if m.name == "good" and m.uuid is None]
    injected_keys = {str(m.get("id", m.get("distinct_id"))) for m in injected}
    pg_persons = {
        str(r["id"]): (r["version"], orjson.loads(r["properties"]))
        for r in await pg.fetch(
            "SELECT id, version, properties::text FROM persons WHERE project_id = $1", project_id
        )
    }
    ch_persons = {
        r["id"]: (int(r["version"]), orjson.loads(r["properties"]))
        for r in await stack.sql(
            "SELECT toString(id) AS id, version, properties FROM persons FINAL"
            f" WHERE project_id = {project_id} AND is_deleted = 0"
        )
        if r["id"] not in injected_keys
    }
    assert ch_persons.keys() == pg_persons.keys(), ch_persons.keys() ^ pg_persons.keys()
    assert ch_persons == pg_persons
    pg_ids = {
        r["distinct_id"]: str(r["person_id"])
        for r in await pg.fetch(
            "SELECT distinct_id, person_id FROM person_distinct_ids WHERE project_id = $1", project_id
        )
    }
    ch_ids = {
        r["distinct_id"]: r["person_id"]
        for r in await stack.sql(
            "SELECT distinct_id, toString(person_id) AS person_id FROM person_distinct_ids FINAL"
            f" WHERE project_id = {project_id} AND is_deleted = 0"
        )
        if r["distinct_id"] not in injected_keys
    }
    assert ch_ids == pg_ids, ch_ids.keys() ^ pg_ids.keys()

    # no worker exited or restarted
    for name in WORKERS:
        assert stack.running(name), name
        with pytest.raises(TimeoutError):
            stack.wait_exit(name, 0)
        assert [line["event"] for line in stack.log(name)].count("worker_starting") == 1, name
    assert stack.restarts == dict.fromkeys(WORKERS, 0)

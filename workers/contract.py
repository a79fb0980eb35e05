"""What each topic's messages hold, checked once where a message enters a stage.

| topic | key | value (a JSON object) | produced by |
|---|---|---|---|
| `events_raw` | `<token>:<distinct_id>` | an event: `uuid, project_id, event, distinct_id, timestamp, received_at` required; `sent_at, ip, token, lib, protocol`; `properties` (object), `set`, `set_once`, `user_properties` (object or null) | capture |
| `events` | the same | an `events_raw` event plus `person_id` (uuid) and `person_properties` (object) | persons |
| `persons` | person id | `id, project_id, properties, is_identified, created_at, version, is_deleted` | persons |
| `person_distinct_ids` | `<project_id>:<distinct_id>` | `project_id, distinct_id, person_id, version, is_deleted` | persons |
| `sessions` | the session id | `session_id, kind, project_id, person_id, start, end, duration_seconds, event_count, pageview_count, bounced` required; `distinct_id, entry_url, exit_url, browser, os, device_type, country` strings or null | the Flink job |
| `event_counts_1m` | none | `project_id, event, minute, count, actors` (an array of JSON texts `[person uuid, distinct id]`) | the Flink job |
| `late_events` | none | `uuid, project_id, event, distinct_id, person_id, timestamp, kafka_partition, kafka_offset` | the Flink job |
| `dead_letter` | the original key | the original bytes; headers `DEAD_LETTER_HEADERS` (+ `replay_of`) | every stage |

A message that breaks its contract raises `Invalid` (a `DataError`) whose `reason` is one of `REASONS`, and
is parked in `dead_letter`. Every string is sanitized on the way in (U+0000 and lone surrogates become
U+FFFD, `workers.sanitize`) and the same bounds hold everywhere (nesting depth, keys, key length).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from workers.errors import DataError
from workers.metrics import SANITIZED_VALUES
from workers.sanitize import Limits, OutOfBounds, clean, loads

Message = dict[str, Any]

# the headers of a dead letter, in order; a replayed message adds `replay_of` (the dlq index id)
DEAD_LETTER_HEADERS = ("source_topic", "source_partition", "source_offset", "stage", "reason", "error",
                       "time", "attempts")  # fmt: skip

# every reason a message can be parked for, by whom
REASONS = {
    "invalid_json": "the value is not JSON (any stage)",
    "not_an_object": "the value is JSON but not an object (any stage)",
    "missing_field": "a required field is absent or empty (any stage)",
    "invalid_field": "a field has the wrong type or an unreadable value (any stage)",
    "too_deep": "containers nested deeper than EVENT_MAX_DEPTH (any stage)",
    "too_many_keys": "an object with more than EVENT_MAX_KEYS keys (any stage)",
    "key_too_long": "a key longer than EVENT_MAX_KEY_LENGTH characters (any stage)",
    "junk_distinct_id": "a distinct id that names nobody: anonymous, null, 0, ... (persons)",
    "unknown_project": "no project has this project_id (persons, writer)",
    "schema_invalid": "the event breaks its project's JSON Schema in event_schemas (persons)",
    "postgres_refused": "Postgres refused a value (SQLSTATE class 22, 23 or 54) (persons, dlq)",
    "clickhouse_refused": "ClickHouse refused the row (writer)",
    "kafka_refused": "Kafka refused the output, e.g. too large (persons)",
    "process_failed": "the stage's own code failed on this message (any stage)",
}
# reasons that judge what a client sent, not what a stage or a store did: they never count towards the DLQ
# limits, so a flood of junk from one client cannot stop a stage for every project
CLIENT_REASONS = frozenset({"junk_distinct_id", "schema_invalid", "unknown_project"})


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class Invalid(DataError):
    """A message that breaks its topic's contract."""


def parse(value: bytes, limits: Limits, stage: str) -> Message:
    """The message as a sanitized, bounded JSON object with a non-negative integer `project_id`."""
    try:
        message = loads(value)
    except ValueError as exc:
        raise Invalid("invalid_json", str(exc)) from None
    if type(message) is not dict:
        raise Invalid("not_an_object", f"the value is a JSON {type(message).__name__}, not an object")
    try:
        message, replaced = clean(message, limits)
    except OutOfBounds as exc:
        raise Invalid(exc.reason, str(exc)) from None
    if replaced:
        SANITIZED_VALUES.labels(stage).inc(replaced)
    project_id = message.get("project_id")
    if type(project_id) is not int or project_id < 0:
        raise Invalid("invalid_field", "project_id: missing or not a non-negative integer")
    return message


def raw_event(value: bytes, limits: Limits, stage: str) -> Message:
    """An `events_raw` message. A missing `properties` becomes `{}`."""
    event = parse(value, limits, stage)
    text(event, "event")
    text(event, "distinct_id")
    uuid_of(event, "uuid")
    instant(event, "timestamp")
    instant(event, "received_at")
    instant(event, "sent_at", required=False)
    object_or_empty(event, "properties")
    optional(event, ("set", "set_once", "user_properties"), dict)
    optional(event, ("ip", "lib", "token"), str)
    return event


def event(value: bytes, limits: Limits, stage: str) -> Message:
    """An `events` message: an `events_raw` event with its person."""
    message = raw_event(value, limits, stage)
    uuid_of(message, "person_id")
    object_or_empty(message, "person_properties")
    return message


def person(value: bytes, limits: Limits, stage: str) -> Message:
    """A `persons` message."""
    message = parse(value, limits, stage)
    uuid_of(message, "id")
    if type(message.get("properties")) is not dict:
        raise Invalid("invalid_field", "properties: missing or not an object")
    instant(message, "created_at")
    version(message)
    return message


def distinct_id(value: bytes, limits: Limits, stage: str) -> Message:
    """A `person_distinct_ids` message."""
    message = parse(value, limits, stage)
    text(message, "distinct_id")
    uuid_of(message, "person_id")
    version(message)
    return message


SESSION_KINDS = frozenset({"explicit", "amplitude", "window"})
SESSION_TEXTS = ("distinct_id", "entry_url", "exit_url", "browser", "os", "device_type", "country")


def session(value: bytes, limits: Limits, stage: str) -> Message:
    """A `sessions` message (the Flink job's)."""
    message = parse(value, limits, stage)
    text(message, "session_id")
    if text(message, "kind") not in SESSION_KINDS:
        raise Invalid("invalid_field", f"kind: not one of {sorted(SESSION_KINDS)}")
    uuid_of(message, "person_id")
    instant(message, "start")
    instant(message, "end")
    duration = message.get("duration_seconds")
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
        raise Invalid("invalid_field", "duration_seconds: missing or not a non-negative number")
    natural(message, "event_count")
    natural(message, "pageview_count")
    if type(message.get("bounced")) is not bool:
        raise Invalid("invalid_field", "bounced: missing or not a boolean")
    optional(message, SESSION_TEXTS, str)
    return message


def event_count(value: bytes, limits: Limits, stage: str) -> Message:
    """An `event_counts_1m` message (the Flink job's): `actors`, each a JSON text `[person id, distinct
    id]`, come back as the list of those pairs (the person id a canonical UUID)."""
    message = parse(value, limits, stage)
    text(message, "event")
    instant(message, "minute")
    natural(message, "count")
    actors = message.get("actors")
    if type(actors) is not list:
        raise Invalid("invalid_field", "actors: missing or not an array")
    pairs = []
    for actor in actors:
        try:
            person, distinct_id = loads(actor) if isinstance(actor, str) else (None, None)
        except (TypeError, ValueError):
            person = distinct_id = None
        person = canonical_uuid(person)
        if person is None or not isinstance(distinct_id, str):
            raise Invalid("invalid_field", "actors: not an array of JSON texts [person UUID, distinct id]")
        pairs.append([person, distinct_id])
    message["actors"], _ = clean(pairs, limits)
    return message


def late_event(value: bytes, limits: Limits, stage: str) -> Message:
    """A `late_events` message (the Flink job's): an event its minute was counted without."""
    message = parse(value, limits, stage)
    uuid_of(message, "uuid")
    text(message, "event")
    text(message, "distinct_id")
    uuid_of(message, "person_id")
    instant(message, "timestamp")
    natural(message, "kafka_partition")
    natural(message, "kafka_offset")
    return message


_TYPE_NAMES: dict[type, str] = {dict: "an object", str: "a string"}


def optional(message: Message, fields: tuple[str, ...], kind: type) -> None:
    """Each field absent, null, or of this type."""
    for field in fields:
        if message.get(field) is not None and type(message[field]) is not kind:
            raise Invalid("invalid_field", f"{field}: not {_TYPE_NAMES[kind]}")


def object_or_empty(message: Message, field: str) -> None:
    """The field an object; absent or null becomes {}."""
    if message.get(field) is None:
        message[field] = {}
    elif type(message[field]) is not dict:
        raise Invalid("invalid_field", f"{field}: not an object")


def text(message: Message, field: str) -> str:
    value = message.get(field)
    if value is None or value == "":
        raise Invalid("missing_field", f"{field}: missing or empty")
    if type(value) is not str:
        raise Invalid("invalid_field", f"{field}: not a string")
    return value


def canonical_uuid(value: object) -> str | None:
    """A UUID as its canonical lower-case string (the form every stage writes), or None if it is none."""
    if type(value) is str and len(value) == 36 and _CANONICAL_UUID.match(value):
        return value
    try:
        return str(uuid.UUID(value)) if type(value) is str else None
    except ValueError:
        return None


def uuid_of(message: Message, field: str) -> str:
    """The field as a canonical UUID string (written back, so later stages read it as is)."""
    value = message.get(field)
    if value is None:
        raise Invalid("missing_field", f"{field}: missing")
    canonical = canonical_uuid(value)
    if canonical is None:
        raise Invalid("invalid_field", f"{field}: not a UUID")
    message[field] = canonical
    return canonical


def instant(message: Message, field: str, required: bool = True) -> datetime | None:
    """The field as an aware datetime (ISO-8601 with a zone)."""
    value = message.get(field)
    if value is None:
        if required:
            raise Invalid("missing_field", f"{field}: missing")
        return None
    try:
        parsed = datetime.fromisoformat(value) if type(value) is str else None
        if parsed is not None and parsed.tzinfo is not None:
            parsed.astimezone(UTC)  # an instant outside years 1-9999 in UTC: no store can hold it
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Invalid("invalid_field", f"{field}: not an ISO-8601 time with a zone within years 1-9999 UTC")
    return parsed


def version(message: Message) -> int:
    value = message.get("version")
    if type(value) is not int or value < 0:
        raise Invalid("invalid_field", "version: missing or not a non-negative integer")
    return value


def natural(message: Message, field: str) -> int:
    value = message.get(field)
    if type(value) is not int or value < 0:
        raise Invalid("invalid_field", f"{field}: missing or not a non-negative integer")
    return value

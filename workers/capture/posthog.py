"""PostHog capture payloads -> normalized events. Pure functions, no I/O.

Accepted shapes (PROTOCOLS.md §1-3): an envelope `{api_key|token, batch: [...], sent_at}`, a bare array of
events, or one event object. The token comes from the envelope, else from an event (`api_key`, `token`,
`properties.token`), else from the query string.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workers.capture import (
    Event,
    EventError,
    InvalidField,
    Rejected,
    as_id,
    corrected_timestamp,
    iso,
    object_or_none,
    parse_time,
    parse_time_or_none,
)
from workers.contract import canonical_uuid
from workers.sanitize import OutOfBounds


@dataclass(frozen=True, slots=True)
class Envelope:
    token: str | None
    sent_at: datetime | None
    events: list[object]  # once cleaned (app), an event out of bounds is its OutOfBounds


def envelope(payload: object, query_token: str | None = None) -> Envelope:
    """The events of a request and what they share; `Rejected` (400) for a shape that holds no events."""
    top: dict[str, Any] = {}
    if isinstance(payload, list):
        events = payload
    elif isinstance(payload, dict) and "batch" in payload:
        top = payload
        if not isinstance(payload["batch"], list):
            raise Rejected(400, "invalid_payload", "batch must be a JSON array of events")
        events = payload["batch"]
    elif isinstance(payload, dict):
        events = [payload]
    else:
        raise Rejected(
            400, "invalid_payload", "the body must be an event, an array of events or {batch: [...]}"
        )
    if not events:
        raise Rejected(400, "empty_batch", "the request holds no events")
    return Envelope(_token(top, events, query_token), parse_time_or_none(top.get("sent_at")), events)


def normalize(
    env: Envelope, project_id: int, token: str, received_at: datetime, ip: str | None
) -> list[Event]:
    """Every event normalized, or `Rejected` (400) listing each bad one: a batch is all or nothing."""
    outcomes = normalize_each(env, project_id, token, received_at, ip)
    errors = [o for o in outcomes if isinstance(o, EventError)]
    if errors:
        raise Rejected(
            400, "invalid_events", f"{len(errors)} of {len(env.events)} events are invalid", errors=errors
        )
    return outcomes  # type: ignore[return-value]


def normalize_each(
    env: Envelope, project_id: int, token: str, received_at: datetime, ip: str | None
) -> list[Event | EventError]:
    """Each event normalized, or the error that says why it cannot be (capture v1 answers per event)."""
    outcomes: list[Event | EventError] = []
    times = {received_at: iso(received_at)}  # the request's own times, formatted once
    if env.sent_at is not None:
        times[env.sent_at] = iso(env.sent_at)
    for index, raw in enumerate(env.events):
        try:
            outcomes.append(_event(raw, env.sent_at, project_id, token, received_at, ip, times))
        except InvalidField as exc:
            outcomes.append(EventError(index, exc.field, exc.reason, exc.kind))
    return outcomes


def v1_envelope(payload: object, token: str) -> Envelope:
    """Capture v1 (`POST /i/v1/analytics/events`): `{created_at, batch: [...]}`, the token in the header."""
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise Rejected(400, "invalid_payload", "the body must be {created_at, batch: [...]}")
    if not payload["batch"]:
        raise Rejected(400, "empty_batch", "the request holds no events")
    return Envelope(token, parse_time_or_none(payload.get("created_at")), payload["batch"])


def _token(top: dict[str, Any], events: list[object], query_token: str | None) -> str | None:
    dicts = [raw for raw in events if isinstance(raw, dict)]
    candidates: list[object] = [top.get("api_key"), top.get("token")]
    candidates += [value for raw in dicts for value in (raw.get("api_key"), raw.get("token"))]
    candidates += [raw["properties"].get("token") for raw in dicts if isinstance(raw.get("properties"), dict)]
    candidates.append(query_token)
    return next((c.strip() for c in candidates if isinstance(c, str) and c.strip()), None)


def _event(
    raw: object,
    envelope_sent_at: datetime | None,
    project_id: int,
    token: str,
    received_at: datetime,
    ip: str | None,
    times: dict[datetime, str],
) -> Event:
    if isinstance(raw, OutOfBounds):
        raise InvalidField(raw.path or "event", f"{raw.reason}: {raw.detail}")
    if not isinstance(raw, dict):
        raise InvalidField("event", "an event must be a JSON object")
    name = raw.get("event")
    if not isinstance(name, str) or not name.strip():
        raise InvalidField("event", "the event name is missing or not a string", "missing")
    properties = object_or_none(raw.get("properties"), "properties") or {}
    distinct_id = as_id(_first(raw.get("distinct_id"), properties.get("distinct_id")))
    if distinct_id is None:
        raise InvalidField("distinct_id", "distinct_id is missing (top level or in properties)", "missing")
    sent_at = parse_time_or_none(raw.get("sent_at")) or envelope_sent_at
    try:
        timestamp = corrected_timestamp(
            _timestamp(raw, properties),
            sent_at,
            _number(raw.get("offset")),
            received_at,
            ignore_sent_at=properties.get("$ignore_sent_at") is True,
        )
    except ValueError as exc:
        raise InvalidField("timestamp", str(exc)) from None
    lib = properties.get("$lib")
    return {
        "uuid": _uuid(raw.get("uuid")),
        "event": name,
        "distinct_id": distinct_id,
        "project_id": project_id,
        "token": token,
        "timestamp": iso(timestamp),
        "received_at": times[received_at],
        "sent_at": (times.get(sent_at) or iso(sent_at)) if sent_at else None,
        "ip": ip,
        "properties": properties,
        "set": object_or_none(_first(raw.get("$set"), properties.get("$set")), "$set"),
        "set_once": object_or_none(_first(raw.get("$set_once"), properties.get("$set_once")), "$set_once"),
        "user_properties": None,
        "protocol": "posthog",
        "lib": lib if isinstance(lib, str) else "",
    }


def _timestamp(raw: dict[str, Any], properties: dict[str, Any]) -> datetime | None:
    """`timestamp` (ISO, or epoch s/ms), else the legacy `properties.$time` (epoch seconds)."""
    if raw.get("timestamp") is not None:
        return parse_time(raw["timestamp"], "auto")
    if properties.get("$time") is not None:
        return parse_time(properties["$time"], "s")
    return None


def _uuid(value: object) -> str:
    if value is None:
        return str(uuid.uuid4())
    canonical = canonical_uuid(value)
    if canonical is None:
        raise InvalidField("uuid", f"{value!r} is not a valid UUID")
    return canonical


def _first(*values: object) -> object:
    return next((v for v in values if v is not None), None)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None

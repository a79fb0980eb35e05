"""Amplitude HTTP V2 / Batch payloads -> normalized events. Pure functions, no I/O.

Body `{api_key, events: [...], options: {min_id_length}, client_upload_time}` (PROTOCOLS.md §4-5). The SDKs
act on the 400 body: `missing_field` drops the whole batch, per-event index lists drop only those events
and resend the rest, so every error here names what the SDK needs (see `error_fields`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from workers import sanitize
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

# uuid5(INSERT_ID_NAMESPACE, "<project_id>:<distinct_id>:<insert_id>"): a resent batch keeps its uuids
INSERT_ID_NAMESPACE = uuid.UUID("5d6b76dc-78fd-4ec9-a5b0-74710dd3ca0f")
DEFAULT_MIN_ID_LENGTH = 5
# top-level fields that become something other than a `$<name>` property
_MAPPED = frozenset(
    ("event_type", "event_properties", "user_properties", "time", "user_id", "device_id", "insert_id",
     "session_id", "library")
)  # fmt: skip
_ERROR_KEYS = {
    "missing": "events_with_missing_fields",
    "invalid": "events_with_invalid_fields",
    "id_length": "events_with_invalid_id_lengths",
}


@dataclass(frozen=True, slots=True)
class Envelope:
    api_key: str
    events: list[object]  # once cleaned (app), an event out of bounds is its OutOfBounds
    min_id_length: int
    client_upload_time: datetime | None


def envelope(payload: object) -> Envelope:
    if not isinstance(payload, dict):
        raise Rejected(400, "invalid_payload", "Invalid request body: expected a JSON object")
    api_key = payload.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        raise _missing("api_key")
    events = payload.get("events")
    if not isinstance(events, list) or not events:
        raise _missing("events")
    options = payload.get("options")
    min_length = options.get("min_id_length") if isinstance(options, dict) else None
    if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 0:
        min_length = DEFAULT_MIN_ID_LENGTH
    return Envelope(
        api_key.strip(), events, min_length, parse_time_or_none(payload.get("client_upload_time"))
    )


def identify_payload(body: bytes, content_type: str) -> dict[str, Any]:
    """Amplitude's Identify API (`POST /identify`, form fields `api_key` and `identification`, a JSON object
    or list of `{user_id, device_id, user_properties, ...}`) as an HTTP V2 payload of `$identify` events."""
    if content_type == "application/json":
        try:
            form = sanitize.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Rejected(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(form, dict):
            raise Rejected(400, "invalid_payload", "Invalid request body: expected a JSON object")
    else:
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise Rejected(400, "invalid_payload", "the form is not UTF-8") from None
    identification = form.get("identification")
    if identification is None or identification == "":
        raise _missing("identification")
    if isinstance(identification, str):
        try:
            identification = sanitize.loads(identification)
        except orjson.JSONDecodeError as exc:
            raise Rejected(400, "invalid_json", f"identification is not valid JSON: {exc}") from None
    updates = identification if isinstance(identification, list) else [identification]
    events = [{**u, "event_type": "$identify"} if isinstance(u, dict) else u for u in updates]
    return {"api_key": form.get("api_key"), "events": events}


def normalize(env: Envelope, project_id: int, received_at: datetime, ip: str | None) -> list[Event]:
    """Every event normalized, or `Rejected` (400) with Amplitude's per-event index lists."""
    events: list[Event] = []
    errors: list[EventError] = []
    for index, raw in enumerate(env.events):
        try:
            events.append(_event(raw, env, project_id, received_at, ip))
        except InvalidField as exc:
            errors.append(EventError(index, exc.field, exc.reason, exc.kind))
    if errors:
        raise Rejected(
            400,
            "invalid_events",
            "Invalid field values on some events",
            errors=errors,
            extra=error_fields(errors),
        )
    return events


def error_fields(errors: Sequence[EventError]) -> dict[str, dict[str, list[int]]]:
    """`{"events_with_missing_fields": {"event_type": [1]}, "events_with_invalid_fields": {...}, ...}`."""
    fields: dict[str, dict[str, list[int]]] = {}
    for error in errors:
        fields.setdefault(_ERROR_KEYS[error.kind], {}).setdefault(error.field, []).append(error.index)
    return fields


def _missing(field: str) -> Rejected:
    return Rejected(400, "missing_field", "Request missing required field", extra={"missing_field": field})


def _event(raw: object, env: Envelope, project_id: int, received_at: datetime, ip: str | None) -> Event:
    if isinstance(raw, sanitize.OutOfBounds):
        raise InvalidField(raw.path or "event", f"{raw.reason}: {raw.detail}")
    if not isinstance(raw, dict):
        raise InvalidField("event", "an event must be a JSON object")
    event_type = raw.get("event_type")
    if event_type is None or event_type == "":
        raise InvalidField("event_type", "event_type is required", "missing")
    if not isinstance(event_type, str):
        raise InvalidField("event_type", "event_type must be a string")
    user_id = _id(raw, "user_id", env.min_id_length)
    device_id = _id(raw, "device_id", env.min_id_length)
    distinct_id = user_id or device_id
    if distinct_id is None:
        raise InvalidField("user_id", "user_id or device_id is required", "missing")
    time = raw.get("time")
    if time is not None and (not isinstance(time, int) or isinstance(time, bool)):
        raise InvalidField("time", "time must be an integer (epoch milliseconds)")
    try:
        sent = parse_time(time, "ms") if time is not None else None
        timestamp = corrected_timestamp(sent, env.client_upload_time, None, received_at)
    except ValueError as exc:
        raise InvalidField("time", str(exc)) from None
    insert_id = as_id(raw.get("insert_id"))
    library = raw.get("library")
    properties = dict(object_or_none(raw.get("event_properties"), "event_properties") or {})
    own = {
        "$device_id": device_id,
        "$user_id": user_id,
        "$insert_id": insert_id,
        "$session_id": _session_id(raw.get("session_id")),
        "$lib": library if isinstance(library, str) else None,
    }
    properties.update({k: v for k, v in own.items() if v is not None})
    for name, value in raw.items():
        if name not in _MAPPED and value is not None:
            properties.setdefault(f"${name}", value)
    return {
        "uuid": _uuid(project_id, distinct_id, insert_id),
        "event": event_type,
        "distinct_id": distinct_id,
        "project_id": project_id,
        "token": env.api_key,
        "timestamp": iso(timestamp),
        "received_at": iso(received_at),
        "sent_at": iso(env.client_upload_time) if env.client_upload_time else None,
        "ip": ip,
        "properties": properties,
        "set": None,
        "set_once": None,
        "user_properties": object_or_none(raw.get("user_properties"), "user_properties"),
        "protocol": "amplitude",
        "lib": library if isinstance(library, str) else "",
    }


def _id(raw: dict[str, Any], field: str, min_length: int) -> str | None:
    value = raw.get(field)
    if value is None or value == "":
        return None
    text = as_id(value)
    if text is None:
        raise InvalidField(field, f"{field} must be a non-blank string")
    if len(text) < min_length:
        raise InvalidField(field, f"{field} is shorter than {min_length} characters", "id_length")
    return text


def _session_id(value: object) -> str | None:
    if value is None or value == -1 or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        return str(value)
    raise InvalidField("session_id", "session_id must be an integer (epoch milliseconds)")


def _uuid(project_id: int, distinct_id: str, insert_id: str | None) -> str:
    if insert_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(INSERT_ID_NAMESPACE, f"{project_id}:{distinct_id}:{insert_id}"))


def throttled_answer(
    events: Sequence[Event], throttled: Sequence[int], eps_threshold: float
) -> dict[str, Any]:
    """Amplitude's 429 for a request whose events `throttled` (indexes) were over a rate limit: the SDKs
    resend exactly those after 30 s (the others were stored; their resends are deduplicated by insert_id).
    `throttled_users` / `throttled_devices` count each user's (or, without a user id, device's) throttled
    events in this request; Amplitude puts the id's events per second there (the SDKs do not read it)."""
    users: dict[str, int] = {}
    devices: dict[str, int] = {}
    for index in throttled:
        properties = events[index]["properties"]
        user_id = properties.get("$user_id")
        if user_id is not None:
            users[user_id] = users.get(user_id, 0) + 1
        else:
            device_id = properties["$device_id"]
            devices[device_id] = devices.get(device_id, 0) + 1
    return {
        "code": 429,
        "error": "Too many requests for some devices and users",
        "eps_threshold": int(eps_threshold) if eps_threshold == int(eps_threshold) else eps_threshold,
        "throttled_devices": devices,
        "throttled_users": users,
        "throttled_events": list(throttled),
    }

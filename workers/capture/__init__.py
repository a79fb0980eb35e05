"""capture: SDK HTTP requests -> normalized events on `events_raw`.

`decode` turns a request body into a JSON payload, `posthog` and `amplitude` turn payloads into normalized
events (pure functions), `app` serves HTTP and produces. This module holds what they share: the errors,
and timestamps with PostHog's clock-skew correction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Event = dict[str, Any]

MAX_FUTURE = timedelta(hours=23)


@dataclass(frozen=True, slots=True)
class EventError:
    """One bad event of a batch. `kind` is what Amplitude's answer needs: missing, invalid or id_length."""

    index: int
    field: str
    reason: str
    kind: str = "invalid"


class InvalidField(ValueError):
    """Raised while normalizing one event; the caller turns it into an `EventError` with the index."""

    def __init__(self, field: str, reason: str, kind: str = "invalid") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.kind = kind


class Rejected(Exception):
    """The request is refused as a whole: nothing of it is produced. `extra` is protocol-specific detail."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: Sequence[EventError] = (),
        extra: Mapping[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = list(errors)
        self.extra = dict(extra or {})
        self.retry_after = retry_after  # seconds, for a 429


def parse_time(value: object, unit: Literal["s", "ms", "auto"]) -> datetime:
    """An ISO-8601 string (zone-less = UTC) or an epoch number -> aware UTC datetime; ValueError if not.

    `auto` reads numbers from 1e11 up as milliseconds (that is 1973 in ms, year 5138 in seconds).
    """
    try:
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            millis = unit == "ms" or (unit == "auto" and abs(value) >= 1e11)
            return datetime.fromtimestamp(value / 1000 if millis else value, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"unparsable timestamp {value!r}: {exc}") from None
    raise ValueError(f"timestamp must be an ISO-8601 string or an epoch number, got {type(value).__name__}")


def parse_time_or_none(value: object) -> datetime | None:
    """For fields that only help (sent_at, client_upload_time): unparsable means absent."""
    if value is None:
        return None
    try:
        return parse_time(value, "auto")
    except ValueError:
        return None


def corrected_timestamp(
    timestamp: datetime | None,
    sent_at: datetime | None,
    offset_ms: float | None,
    received_at: datetime,
    ignore_sent_at: bool = False,
) -> datetime:
    """PostHog's clock-skew correction: trust the client's clock for durations, ours for the instant.

    Raises ValueError when the arithmetic leaves the datetime range.
    """
    try:
        if timestamp is not None and sent_at is not None and not ignore_sent_at:
            result = received_at + (timestamp - sent_at)
        elif offset_ms is not None:
            result = received_at - timedelta(milliseconds=offset_ms)
        elif timestamp is not None:
            result = timestamp
        else:
            result = received_at
    except OverflowError:
        raise ValueError("timestamp out of range after clock-skew correction") from None
    return received_at if result - received_at > MAX_FUTURE else result


def iso(moment: datetime) -> str:
    """UTC, microseconds, `Z`: 2026-11-22T05:46:08.347722Z."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def as_id(value: object) -> str | None:
    """A distinct id / user id as sent: a non-blank string, or a number turned into one; else None."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def object_or_none(value: object, name: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise InvalidField(name, "must be a JSON object")

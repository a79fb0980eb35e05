"""What no store can hold, replaced; how big an event may be, checked. Pure functions, run on every event.

Postgres text and jsonb refuse U+0000; orjson, Postgres and ClickHouse all refuse a lone surrogate (half of
a UTF-16 pair: JavaScript's JSON.stringify writes one for a string cut inside an emoji); orjson refuses
integers past 64 bits. `clean` turns such strings into U+FFFD and such integers into floats, so one bad
value costs that value, not its event or the event's batch. `loads` lets lone surrogate escapes through.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from workers.settings import Settings

REPLACEMENT = "\ufffd"

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson.dumps takes: i64 and u64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int  # containers nested in each other: a scalar is depth 0, {} is depth 1
    max_keys: int  # keys in any one object
    max_key_length: int  # characters in any one key

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.event_max_depth, settings.event_max_keys, settings.event_max_key_length)


class OutOfBounds(ValueError):
    """A value past one of the `Limits`: `reason` is a stable code, `path` where (`properties.$set.a`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self._keys: list[str | int] = []  # from the offending container up to the top

    @property
    def path(self) -> str:
        path = "".join(f"[{key}]" if type(key) is int else f".{key}" for key in reversed(self._keys))
        return _clean_str(path[1:] if path.startswith(".") else path)

    def __str__(self) -> str:
        return f"{self.reason} at {self.path or 'the top'}: {self.detail}"


def clean(value: Any, limits: Limits) -> tuple[Any, int]:
    """`value` with U+0000 and lone surrogates (keys included) replaced by U+FFFD and integers past 64 bits
    turned into floats, and how many strings and integers that changed; `value` itself when that is none.
    Raises `OutOfBounds`. Takes JSON as orjson and json build it: dict, list, str, int, float, bool, None.
    """
    kind = type(value)
    if kind is dict or kind is list:
        _check_bounds(value, limits, 1)
    try:
        # orjson in C is the fast check: it refuses lone surrogates and wide integers, and escapes U+0000
        if b"\\u0000" not in orjson.dumps(value):
            return value, 0
    except TypeError:
        pass
    copy, changed = _copy(value)
    return (copy if changed else value), changed


def loads(data: bytes | str) -> Any:
    """orjson.loads, except that lone surrogate escapes (`"\\ud83d"`) are read, for `clean` to replace.

    Whatever else orjson refuses is refused with orjson's own error, on the fallback path too.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as refused:
        if "surrogate" not in refused.msg:
            raise
        try:
            text = data.decode() if isinstance(data, bytes) else data  # strict: no UTF-8-encoded surrogates
            return json.loads(text, parse_int=_int, parse_float=_finite, parse_constant=_refuse)
        except (ValueError, OverflowError, RecursionError):
            raise refused from None


def _check_bounds(value: dict[str, Any] | list[Any], limits: Limits, depth: int) -> None:
    if depth > limits.max_depth:
        raise OutOfBounds("too_deep", f"more than {limits.max_depth} nested objects and arrays")
    if type(value) is dict:
        if len(value) > limits.max_keys:
            raise OutOfBounds("too_many_keys", f"{len(value)} keys, more than {limits.max_keys}")
        # the keys' total length is cheaper to have than the longest, and nearly always enough
        if len("".join(value)) > limits.max_key_length:
            longest = max(map(len, value))
            if longest > limits.max_key_length:
                raise OutOfBounds(
                    "key_too_long", f"a key of {longest} characters, more than {limits.max_key_length}"
                )
        items: Any = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            try:
                _check_bounds(item, limits, depth + 1)
            except OutOfBounds as exc:
                exc._keys.append(_key_of(value, item))
                raise


def _key_of(container: dict[str, Any] | list[Any], item: object) -> str | int:
    pairs = container.items() if type(container) is dict else enumerate(container)
    return next(key for key, value in pairs if value is item)


def _copy(value: Any) -> tuple[Any, int]:
    kind = type(value)
    if kind is dict:
        copy: dict[str, Any] = {}
        changed = 0
        for key, item in value.items():
            new_key, key_changed = _copy(key)
            new_item, item_changed = _copy(item)
            copy[new_key] = new_item  # keys equal once cleaned: the later one's value stays
            changed += key_changed + item_changed
        return copy, changed
    if kind is list:
        pairs = [_copy(item) for item in value]
        return [item for item, _ in pairs], sum(changed for _, changed in pairs)
    if kind is str and _UNSTORABLE.search(value):
        return _clean_str(value), 1
    if kind is int and not _INT_MIN <= value <= _INT_MAX:
        return _as_float(value), 1
    return value, 0


def _clean_str(text: str) -> str:
    # through UTF-16 so that a surrogate pair split over two characters is joined, not replaced
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined.replace("\x00", REPLACEMENT)


def _as_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:  # JavaScript reads it as Infinity; orjson writes that as null
        return math.inf if value > 0 else -math.inf


def _int(text: str) -> int | float:
    """An integer as orjson reads it: past 64 bits a float, past the float range refused (OverflowError)."""
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else float(value)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number is infinity when parsed as double")
    return value


def _refuse(text: str) -> NoReturn:
    raise ValueError(f"{text} is not JSON")

"""Person property updates carried by an event, as PostHog and Amplitude define them (pure functions).

PostHog: `$set`, `$set_once` (only keys not set yet), `$unset` (a list of keys), each at the top level of
the event or inside `properties`. Amplitude: `user_properties` with `$set`, `$setOnce`, `$add` (numbers),
`$append` / `$prepend` (to a list, a scalar becomes a one-element list), `$unset`, `$remove` (from a list),
`$clearAll`, and plain keys meaning `$set`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Properties = dict[str, Any]
Update = tuple[str, Any]  # (operation, its argument), applied in list order


def updates_of(event: Mapping[str, Any]) -> list[Update]:
    """The property updates an event asks for, in the order they apply (PostHog: $set_once, $set, $unset)."""
    properties = event.get("properties") or {}
    updates: list[Update] = []
    set_once = _merged_objects(event.get("set_once"), properties.get("$set_once"))
    if set_once:
        updates.append(("$setOnce", set_once))
    to_set = _merged_objects(event.get("set"), properties.get("$set"))
    if to_set:
        updates.append(("$set", to_set))
    unset = properties.get("$unset")
    if isinstance(unset, list) and unset:
        updates.append(("$unset", {k: None for k in unset if isinstance(k, str)}))
    user_properties = event.get("user_properties")
    if isinstance(user_properties, dict) and user_properties:
        updates.extend(_amplitude(user_properties))
    return updates


def apply(properties: Properties, updates: list[Update]) -> Properties | None:
    """The new properties, or None when the updates change nothing (then nothing is written).

    Copy on first change: the common case, a `$set_once` of keys already set, costs a lookup per key.
    """
    current = properties
    for operation, values in updates:
        if operation == "$setOnce":
            if values.keys() <= current.keys():
                continue
        elif operation == "$set":
            if values.items() <= current.items() and all(
                type(current[k]) is type(v) for k, v in values.items()
            ):
                continue
        elif operation == "$unset" and not any(k in current for k in values):
            continue
        if current is properties:
            current = dict(properties)
        _OPERATIONS[operation](current, values)
    if current is properties or (current == properties and _same_types(current, properties)):
        return None
    return current


def _same_types(a: Properties, b: Properties) -> bool:
    return all(type(a[k]) is type(b[k]) for k in a)


def _merged_objects(top: object, inner: object) -> Properties:
    merged: Properties = {}
    for source in (inner, top):  # the top-level value wins, as in PostHog
        if isinstance(source, dict):
            merged.update(source)
    return merged


def _set_once(properties: Properties, values: Properties) -> None:
    for key, value in values.items():
        properties.setdefault(key, value)


def _unset(properties: Properties, keys: list[str]) -> None:
    for key in keys:
        properties.pop(key, None)


def _amplitude(user_properties: dict[str, Any]) -> list[Update]:
    plain = {k: v for k, v in user_properties.items() if not k.startswith("$")}
    updates: list[Update] = []
    if user_properties.get("$clearAll"):
        updates.append(("$clearAll", {}))
    for name in ("$setOnce", "$set", "$add", "$append", "$prepend", "$unset", "$remove"):
        values = user_properties.get(name)
        if isinstance(values, dict) and values:
            updates.append((name, values))
    if plain:
        updates.append(("$set", plain))
    return updates


def _add(properties: Properties, values: Properties) -> None:
    for key, amount in values.items():
        amount = _number(amount)
        if amount is None:
            continue
        current = _number(properties.get(key))
        properties[key] = _storable((current or 0) + amount)


def _storable(number: int | float) -> int | float:
    """A sum as orjson can write it: an integer past 64 bits becomes a float, as `workers.sanitize` makes
    of one a client sends (else the person's properties cannot be serialized and the event is lost)."""
    if type(number) is int and not -(2**63) <= number <= 2**64 - 1:
        try:
            return float(number)
        except OverflowError:
            return math.inf if number > 0 else -math.inf
    return number


def _number(value: object) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _append(properties: Properties, values: Properties) -> None:
    for key, value in values.items():
        properties[key] = _as_list(properties.get(key)) + _as_list(value)


def _prepend(properties: Properties, values: Properties) -> None:
    for key, value in values.items():
        properties[key] = _as_list(value) + _as_list(properties.get(key))


def _remove(properties: Properties, values: Properties) -> None:
    for key, value in values.items():
        if key in properties:
            gone = _as_list(value)
            properties[key] = [item for item in _as_list(properties[key]) if item not in gone]


_OPERATIONS: dict[str, Callable[[Properties, Properties], None]] = {
    "$setOnce": _set_once,
    "$set": dict.update,
    "$add": _add,
    "$append": _append,
    "$prepend": _prepend,
    "$unset": lambda p, values: _unset(p, list(values)),
    "$remove": _remove,
    "$clearAll": lambda p, _: p.clear(),
}

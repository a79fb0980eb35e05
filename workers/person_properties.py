"""Person property updates carried by an event, as PostHog and Amplitude define them (pure functions).

PostHog: `$set`, `$set_once` (only keys not set yet), `$unset` (a list of keys), each at the top level of
the event or inside `properties`. Amplitude: `user_properties` with `$set`, `$setOnce`, `$add` (numbers),
`$append` / `$prepend` (to a list, a scalar becomes a one-element list), `$unset`, `$remove` (from a list),
`$clearAll`, and plain keys meaning `$set`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Properties = dict[str, Any]
Update = Callable[[Properties], None]  # mutates a copy of the person's properties


def updates_of(event: Mapping[str, Any]) -> list[Update]:
    """The property updates an event asks for, in the order they apply (PostHog: $set_once, $set, $unset)."""
    properties = event.get("properties") or {}
    updates: list[Update] = []
    set_once = _merged_objects(event.get("set_once"), properties.get("$set_once"))
    if set_once:
        updates.append(lambda p: _set_once(p, set_once))
    to_set = _merged_objects(event.get("set"), properties.get("$set"))
    if to_set:
        updates.append(lambda p: p.update(to_set))
    unset = properties.get("$unset")
    if isinstance(unset, list) and unset:
        keys = [k for k in unset if isinstance(k, str)]
        updates.append(lambda p: _unset(p, keys))
    user_properties = event.get("user_properties")
    if isinstance(user_properties, dict) and user_properties:
        updates.extend(_amplitude(user_properties))
    return updates


def apply(properties: Properties, updates: list[Update]) -> Properties | None:
    """The new properties, or None when the updates change nothing (then nothing is written)."""
    if not updates:
        return None
    result = dict(properties)
    for update in updates:
        update(result)
    return None if result == properties else result


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
    operations = {k: v for k, v in user_properties.items() if k.startswith("$")}
    updates: list[Update] = []
    if operations.get("$clearAll"):
        updates.append(lambda p: p.clear())
    for name in ("$setOnce", "$set", "$add", "$append", "$prepend", "$unset", "$remove"):
        values = operations.get(name)
        if isinstance(values, dict) and values:
            updates.append(_AMPLITUDE_OPERATIONS[name](values))
    if plain:
        updates.append(lambda p: p.update(plain))
    return updates


def _add(values: Properties) -> Update:
    def update(properties: Properties) -> None:
        for key, amount in values.items():
            amount = _number(amount)
            if amount is None:
                continue
            current = _number(properties.get(key))
            properties[key] = (current or 0) + amount

    return update


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


def _append(values: Properties) -> Update:
    def update(properties: Properties) -> None:
        for key, value in values.items():
            properties[key] = _as_list(properties.get(key)) + _as_list(value)

    return update


def _prepend(values: Properties) -> Update:
    def update(properties: Properties) -> None:
        for key, value in values.items():
            properties[key] = _as_list(value) + _as_list(properties.get(key))

    return update


def _remove(values: Properties) -> Update:
    def update(properties: Properties) -> None:
        for key, value in values.items():
            if key in properties:
                gone = _as_list(value)
                properties[key] = [item for item in _as_list(properties[key]) if item not in gone]

    return update


_AMPLITUDE_OPERATIONS: dict[str, Callable[[Properties], Update]] = {
    "$setOnce": lambda values: lambda p: _set_once(p, values),
    "$set": lambda values: lambda p: p.update(values),
    "$add": _add,
    "$append": _append,
    "$prepend": _prepend,
    "$unset": lambda values: lambda p: _unset(p, list(values)),
    "$remove": _remove,
}

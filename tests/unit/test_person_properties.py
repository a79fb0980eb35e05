from __future__ import annotations

from typing import Any

from workers.person_properties import apply, updates_of


def after(current: dict[str, Any], **event: Any) -> dict[str, Any] | None:
    event.setdefault("properties", {})
    return apply(current, updates_of(event))


def test_set_overwrites_and_set_once_never_does() -> None:
    assert after({"plan": "free"}, set={"plan": "pro"}) == {"plan": "pro"}
    assert after({"plan": "free"}, set_once={"plan": "pro", "first": 1}) == {"plan": "free", "first": 1}


def test_set_once_never_overwrites_even_when_set_in_properties() -> None:
    assert after({"a": 1}, properties={"$set_once": {"a": 2}}) is None


def test_top_level_set_wins_over_the_one_in_properties() -> None:
    assert after({}, set={"a": "top"}, properties={"$set": {"a": "inner", "b": 1}}) == {"a": "top", "b": 1}


def test_unset_removes_keys() -> None:
    assert after({"a": 1, "b": 2}, properties={"$unset": ["a", "missing"]}) == {"b": 2}


def test_nothing_changed_means_none() -> None:
    assert after({"a": 1}, set={"a": 1}) is None
    assert after({"a": 1}) is None


def test_amplitude_operations() -> None:
    current = {"count": 1, "tags": ["x"], "gone": True, "plan": "free"}
    user_properties = {
        "$setOnce": {"plan": "pro", "source": "ad"},
        "$add": {"count": 2, "fresh": "3"},
        "$append": {"tags": "y", "new_list": ["a"]},
        "$prepend": {"tags": "w"},
        "$unset": {"gone": "-"},
        "color": "blue",
    }
    assert after(current, user_properties=user_properties) == {
        "count": 3,
        "fresh": 3,
        "tags": ["w", "x", "y"],
        "new_list": ["a"],
        "plan": "free",
        "source": "ad",
        "color": "blue",
    }


def test_amplitude_remove_and_clear_all() -> None:
    assert after({"tags": ["a", "b", "a"]}, user_properties={"$remove": {"tags": "a"}}) == {"tags": ["b"]}
    assert after({"a": 1}, user_properties={"$clearAll": "-"}) == {}


def test_amplitude_add_ignores_non_numbers() -> None:
    assert after({"n": "x"}, user_properties={"$add": {"n": "nope"}}) is None

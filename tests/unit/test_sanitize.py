"""What no store can hold, replaced, and the bounds of an event: exact values, exact paths."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import orjson
import pytest

from workers.sanitize import REPLACEMENT, Limits, OutOfBounds, clean, loads
from workers.settings import Settings

LIMITS = Limits(max_depth=64, max_keys=10_000, max_key_length=1024)
SMALL = Limits(max_depth=3, max_keys=2, max_key_length=4)


def out_of_bounds(value: object, limits: Limits = SMALL) -> OutOfBounds:
    with pytest.raises(OutOfBounds) as caught:
        clean(value, limits)
    return caught.value


def test_nul_is_replaced_in_values_and_keys() -> None:
    assert clean({"a\x00b": "x\x00", "n": "\x00\x00"}, LIMITS) == (
        {"a\ufffdb": "x\ufffd", "n": "\ufffd\ufffd"},
        3,
    )


def test_lone_high_and_low_surrogates_are_replaced() -> None:
    value = {"high": "cut \ud83d", "low": "\ude00 cut", "reversed": "\ude00\ud83d", "key\ud83d": 1}
    assert clean(value, LIMITS) == (
        {"high": "cut \ufffd", "low": "\ufffd cut", "reversed": "\ufffd\ufffd", "key\ufffd": 1},
        4,
    )


def test_a_valid_surrogate_pair_is_kept_and_one_split_over_two_characters_joined() -> None:
    assert clean({"emoji": "a😀b"}, LIMITS) == ({"emoji": "a😀b"}, 0)
    assert clean({"emoji": "a\ud83d\ude00b"}, LIMITS) == ({"emoji": "a😀b"}, 1)


def test_nested_lists_and_objects() -> None:
    value = ["\x00", ["ok", ["\ud800", {"k": ["\x00", 1]}]], {"": None}]
    assert clean(value, LIMITS) == (["\ufffd", ["ok", ["\ufffd", {"k": ["\ufffd", 1]}]], {"": None}], 3)


def test_integers_past_64_bits_become_floats() -> None:
    value = {
        "big": 2**70,
        "low": -(2**64),
        "u64": 2**64 - 1,
        "i64": -(2**63),
        "huge": 10**400,
        "tiny": -(10**400),
    }
    cleaned, changed = clean(value, LIMITS)
    assert cleaned == {
        "big": 1.1805916207174113e21,
        "low": -1.8446744073709552e19,
        "u64": 18446744073709551615,
        "i64": -9223372036854775808,
        "huge": math.inf,
        "tiny": -math.inf,
    }
    assert changed == 4
    assert type(cleaned["big"]) is float and type(cleaned["u64"]) is int
    assert orjson.loads(orjson.dumps(cleaned)) == {**cleaned, "huge": None, "tiny": None}


def test_bools_floats_and_none_are_left_alone() -> None:
    assert clean([True, False, None, 1.5, -0.0, 0], LIMITS) == ([True, False, None, 1.5, -0.0, 0], 0)


def test_keys_equal_once_cleaned_keep_the_later_value() -> None:
    assert clean({"a\x00": 1, "b": 2, "a\ud800": 3}, LIMITS) == ({"a\ufffd": 3, "b": 2}, 2)
    assert clean({"a\ufffd": 1, "a\x00": 2}, LIMITS) == ({"a\ufffd": 2}, 1)


def test_unchanged_input_is_returned_itself_with_count_0() -> None:
    value: dict[str, Any] = {"s": "é 😀 \\u0000", "n": [1, 2.5, None], "o": {"k": "v"}}
    cleaned, changed = clean(value, LIMITS)
    assert changed == 0 and cleaned is value
    assert clean("plain", LIMITS) == ("plain", 0)


def test_changed_input_is_copied_not_mutated() -> None:
    value = {"s": "\x00", "o": {"k": "v"}}
    cleaned, _ = clean(value, LIMITS)
    assert value == {"s": "\x00", "o": {"k": "v"}}
    assert cleaned == {"s": "\ufffd", "o": {"k": "v"}}


def test_depth_up_to_the_limit_is_accepted() -> None:
    assert clean({"a": {"b": []}}, SMALL) == ({"a": {"b": []}}, 0)
    assert clean("scalar", Limits(max_depth=0, max_keys=1, max_key_length=1)) == ("scalar", 0)


@pytest.mark.parametrize(
    ("value", "reason", "path"),
    [
        ({"a": {"b": {"c": {}}}}, "too_deep", "a.b.c"),
        ({"a": [[["x"]]]}, "too_deep", "a[0][0]"),
        ([1, [2, [3, {"k": 1}]]], "too_deep", "[1][1][1]"),
        ({"a": 1, "b": 2, "c": 3}, "too_many_keys", ""),
        ({"p": {"$set": {"x": 1, "y": 2, "z": 3}}}, "too_many_keys", "p.$set"),
        ({"p": {"$set": {"abcde": 1}}}, "key_too_long", "p.$set"),
        ({"p": [{"ok": 1}, {"abcde": 1}]}, "key_too_long", "p[1]"),
        ({"k\x00": {"\ud83d": {"x": {}}}}, "too_deep", "k\ufffd.\ufffd.x"),
    ],
)
def test_each_bound_names_its_reason_and_path(value: object, reason: str, path: str) -> None:
    error = out_of_bounds(value)
    assert (error.reason, error.path) == (reason, path)


def test_out_of_bounds_reads_as_a_sentence() -> None:
    assert (
        str(out_of_bounds({"p": {"a": {"b": {}}}}))
        == "too_deep at p.a.b: more than 3 nested objects and arrays"
    )
    assert str(out_of_bounds({"a": 1, "b": 2, "c": 3})) == "too_many_keys at the top: 3 keys, more than 2"
    assert (
        str(out_of_bounds({"abcdefgh": 1})) == "key_too_long at the top: a key of 8 characters, more than 4"
    )
    assert isinstance(out_of_bounds({"abcde": 1}), ValueError)


def test_keys_at_the_limits_are_accepted() -> None:
    assert clean({"abcd": 1, "efgh": {"ijkl": 2, "mnop": 3}}, SMALL)[1] == 0


def test_limits_from_settings() -> None:
    settings = dataclasses.replace(
        Settings.from_env({}), event_max_depth=5, event_max_keys=6, event_max_key_length=7
    )
    assert Limits.from_settings(settings) == Limits(max_depth=5, max_keys=6, max_key_length=7)
    assert Limits.from_settings(Settings.from_env({})) == Limits(64, 10_000, 1024)


def test_cleaned_values_are_what_orjson_writes() -> None:
    value = {"a\x00": ["\ud83d", 2**65, {"\udc00": "x"}]}
    cleaned, changed = clean(value, LIMITS)
    assert orjson.dumps(cleaned) == '{"a\ufffd":["\ufffd",3.6893488147419103e+19,{"\ufffd":"x"}]}'.encode()
    assert changed == 4


def test_replacement_is_u_fffd() -> None:
    assert REPLACEMENT == "\ufffd"


# ---- loads ----


def test_loads_reads_lone_surrogate_escapes_for_clean_to_replace() -> None:
    data = b'{"cut": "emoji \\ud83d", "low": "\\udc00", "pair": "\\ud83d\\ude00", "n": 18446744073709551616}'
    value = loads(data)
    assert value == {"cut": "emoji \ud83d", "low": "\udc00", "pair": "😀", "n": 1.8446744073709552e19}
    assert type(value["n"]) is float  # as orjson reads an integer past 64 bits
    assert clean(value, LIMITS) == (
        {"cut": "emoji \ufffd", "low": "\ufffd", "pair": "😀", "n": 1.8446744073709552e19},
        2,
    )


def test_loads_takes_str_too() -> None:
    assert loads('["\\ud83d", "\ud800"]') == ["\ud83d", "\ud800"]
    assert loads('{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b'["\\ud83d"',  # truncated, after a surrogate escape
        b'["\\ud83d", NaN]',
        b'["\\ud83d", Infinity]',
        b'["\\ud83d", 1e400]',
        b'["\\ud83d", 1' + b"0" * 400 + b"]",
        b'["\\ud83d", "\x00"]',  # a raw control character
        b'["\\ud83d", "\xed\xa0\xbd"]',  # a surrogate encoded in UTF-8 is not UTF-8
        b'["\\ud83d", "\xff"]',
        b'["\\ud83d", ' + b"[" * 5000 + b"]" * 5000 + b"]",
    ],
)
def test_loads_refuses_everything_else_orjson_refuses_with_orjsons_error(data: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError) as caught:
        loads(data)
    with pytest.raises(orjson.JSONDecodeError) as expected:
        orjson.loads(data)
    assert str(caught.value) == str(expected.value)


def test_loads_fast_path_is_orjson() -> None:
    data = b'{"a": [1, 2.5, "x", null, true], "b": 18446744073709551615}'
    assert loads(data) == orjson.loads(data) == json.loads(data)

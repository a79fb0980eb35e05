"""Amplitude `$add` sums past 64 bits become floats (orjson writes no wider integer), so the person's
properties can still be serialized and the event is not parked as `process_failed`."""

from __future__ import annotations

import math

import orjson
import pytest

from workers.person_properties import apply


@pytest.mark.parametrize(
    ("current", "amount", "expected"),
    [
        (2**64 - 1, 1, float(2**64)),
        (-(2**63), -1, -float(2**63 + 1)),
        (None, "1" * 30, float("1" * 30)),
        (None, "9" * 400, math.inf),  # an integer past the float range
        (2**64 - 2, 1, 2**64 - 1),  # the widest integer orjson writes stays an integer
        (-(2**63) + 1, -1, -(2**63)),
    ],
)
def test_add_past_64_bits_is_a_float(current: int | None, amount: object, expected: float) -> None:
    properties = {} if current is None else {"n": current}
    new = apply(properties, [("$add", {"n": amount})])
    assert new is not None
    assert new["n"] == expected and type(new["n"]) is type(expected)
    orjson.dumps(new)

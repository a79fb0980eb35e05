"""PostHog payloads -> normalized events, with the bodies recorded from the real SDKs (PROTOCOLS.md §1-3)."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workers.capture import Event, EventError, Rejected, corrected_timestamp, iso, parse_time
from workers.capture.posthog import Envelope, envelope, normalize, normalize_each
from workers.sanitize import Limits, OutOfBounds, clean

RECEIVED = datetime(2026, 11, 22, 5, 46, 10, 0, tzinfo=UTC)

# PROTOCOLS.md §1: posthog-python 7.91.1, POST /batch/
PYTHON_BATCH: dict[str, Any] = {
    "batch": [
        {
            "properties": {
                "$anon_distinct_id": "anon-py-1",
                "$set": {"email": "u1@example.com", "plan": "pro"},
                "$set_once": {"first_seen_source": "ads"},
                "$python_runtime": "CPython",
                "$python_version": "3.11.7",
                "$os": "Linux",
                "$lib": "posthog-python",
                "$lib_version": "7.91.1",
                "$geoip_disable": True,
                "$is_server": True,
            },
            "timestamp": "2026-11-22T05:46:08.347722+00:00",
            "distinct_id": "user-py-1",
            "event": "$identify",
            "uuid": "de5ff3f4-475a-407a-a1bb-661a63444c97",
        },
        {
            "timestamp": "2026-11-22T05:46:08.347789+00:00",
            "distinct_id": "user-py-1",
            "$set": {"plan": "enterprise"},
            "event": "$set",
            "properties": {
                "$lib": "posthog-python",
                "$lib_version": "7.91.1",
                "$geoip_disable": True,
                "$is_server": True,
            },
            "uuid": "cf2a8ad4-eb30-4258-8951-4d806998c17a",
        },
    ],
    "historical_migration": False,
    "sent_at": "2026-11-22T05:46:08.348653+00:00",
    "api_key": "phc_rec_token",
}

# PROTOCOLS.md §2: posthog-node 5.70.0, POST /batch/ (gzip on the wire)
NODE_BATCH: dict[str, Any] = {
    "api_key": "phc_rec_token",
    "batch": [
        {
            "event": "$identify",
            "properties": {
                "$set": {"email": "u1@example.com", "plan": "pro"},
                "$set_once": {"first_seen_source": "ads"},
                "$anon_distinct_id": "anon-node-1",
                "$lib": "posthog-node",
                "$lib_version": "5.70.0",
                "$is_server": True,
                "$geoip_disable": True,
            },
            "timestamp": "2026-11-22T05:46:35.615Z",
            "uuid": "01a201ca-c4df-743d-b713-cd8d3b552c1a",
            "distinct_id": "user-node-1",
        },
        {
            "event": "$create_alias",
            "properties": {"distinct_id": "anon-node-2", "alias": "user-node-1", "$lib": "posthog-node"},
            "timestamp": "2026-11-22T05:46:35.616Z",
            "uuid": "01a201ca-c4e0-7752-b83f-f32bb2134539",
            "distinct_id": "anon-node-2",
        },
    ],
    "sent_at": "2026-11-22T05:46:35.617Z",
}

# PROTOCOLS.md §3: posthog-js 1.449.2, POST /e/ (raw gzip as text/plain on the wire)
JS_BATCH: dict[str, Any] = {
    "api_key": "phc_rec_token",
    "sent_at": "2026-11-22T05:50:49.800Z",
    "batch": [
        {
            "uuid": "01a201ce-a5be-74ec-bf89-99300ce23736",
            "event": "$identify",
            "timestamp": "2026-11-22T05:50:49.790Z",
            "$set": {"email": "u1@example.com", "plan": "pro"},
            "$set_once": {"$initial_referrer": "$direct", "first_seen_source": "ads"},
            "properties": {
                "distinct_id": "user-js-1",
                "$anon_distinct_id": "01a201ce-94cf-74e3-831d-8783b71973d2",
                "token": "phc_rec_token",
                "$device_id": "01a201ce-94cf-74e3-831d-8783b71973d2",
                "$lib": "web",
                "$lib_version": "1.449.2",
                "$insert_id": "lnhv2fzssv56rfj0",
                "$time": 1795326649.79,
                "$is_identified": True,
                "$process_person_profile": True,
                "$current_url": "http://127.0.0.1:45287/shop/p/1?utm_source=ads",
            },
        }
    ],
}

# PROTOCOLS.md §3, legacy posthog-js 1.60.0: form data=<lz-string>&compression=lz64, a bare array
LEGACY_ARRAY: list[dict[str, Any]] = [
    {
        "event": "$pageview",
        "properties": {
            "token": "phc_rec_token",
            "distinct_id": "17f1c2a3b4c-legacy",
            "$lib": "web",
            "$lib_version": "1.60.0",
            "$time": 1795326649.5,
            "$current_url": "http://127.0.0.1:45287/",
        },
    },
    {
        "event": "$autocapture",
        "properties": {"token": "phc_rec_token", "distinct_id": "17f1c2a3b4c-legacy", "$time": 1795326650.25},
    },
]


def run(payload: object, query_token: str | None = None, received: datetime = RECEIVED) -> list[Event]:
    env = envelope(payload, query_token)
    assert env.token is not None
    return normalize(env, 7, env.token, received, "203.0.113.9")


def rejected(payload: object) -> Rejected:
    with pytest.raises(Rejected) as caught:
        run(payload)
    return caught.value


def test_posthog_python_batch() -> None:
    identify, set_event = run(PYTHON_BATCH)
    assert identify["uuid"] == "de5ff3f4-475a-407a-a1bb-661a63444c97"
    assert (identify["event"], identify["distinct_id"], identify["project_id"]) == (
        "$identify",
        "user-py-1",
        7,
    )
    assert identify["token"] == "phc_rec_token"
    assert identify["set"] == {"email": "u1@example.com", "plan": "pro"}
    assert identify["set_once"] == {"first_seen_source": "ads"}
    assert identify["properties"]["$anon_distinct_id"] == "anon-py-1"
    assert (identify["protocol"], identify["lib"], identify["ip"]) == (
        "posthog",
        "posthog-python",
        "203.0.113.9",
    )
    assert identify["user_properties"] is None
    assert identify["sent_at"] == "2026-11-22T05:46:08.348653Z"
    assert identify["received_at"] == "2026-11-22T05:46:10.000000Z"
    # timestamp = received_at + (timestamp - sent_at)
    assert identify["timestamp"] == iso(RECEIVED - timedelta(microseconds=348653 - 347722))
    assert set_event["set"] == {"plan": "enterprise"}  # set() puts $set at the top level
    assert set_event["set_once"] is None


def test_posthog_node_batch() -> None:
    identify, alias = run(NODE_BATCH)
    assert identify["uuid"] == "01a201ca-c4df-743d-b713-cd8d3b552c1a"  # UUIDv7 kept
    assert identify["set"] == {"email": "u1@example.com", "plan": "pro"}
    assert identify["lib"] == "posthog-node"
    assert identify["timestamp"] == iso(RECEIVED - timedelta(milliseconds=2))
    assert (alias["event"], alias["distinct_id"]) == ("$create_alias", "anon-node-2")
    assert alias["properties"]["alias"] == "user-node-1"


def test_posthog_js_envelope_with_distinct_id_in_properties_and_top_level_set() -> None:
    [event] = run(JS_BATCH)
    assert event["distinct_id"] == "user-js-1"
    assert event["set"] == {"email": "u1@example.com", "plan": "pro"}
    assert event["set_once"] == {"$initial_referrer": "$direct", "first_seen_source": "ads"}
    assert event["lib"] == "web"
    assert event["timestamp"] == iso(RECEIVED - timedelta(milliseconds=10))  # timestamp wins over $time
    assert event["properties"]["$current_url"].endswith("utm_source=ads")


def test_legacy_bare_array_takes_the_token_from_properties_and_the_time_from_dollar_time() -> None:
    env = envelope(LEGACY_ARRAY)
    assert env.token == "phc_rec_token"
    first, second = normalize(env, 7, "phc_rec_token", RECEIVED, None)
    assert first["distinct_id"] == second["distinct_id"] == "17f1c2a3b4c-legacy"
    assert first["timestamp"] == "2026-11-22T05:50:49.500000Z"  # no sent_at: $time (seconds) as is
    assert second["timestamp"] == "2026-11-22T05:50:50.250000Z"
    assert first["sent_at"] is None
    uuid.UUID(first["uuid"])  # assigned


def test_single_event_object() -> None:
    [event] = run({"event": "signup", "distinct_id": 42, "api_key": "phc_x", "properties": {"plan": "pro"}})
    assert (event["event"], event["distinct_id"], event["token"]) == ("signup", "42", "phc_x")
    assert event["timestamp"] == iso(RECEIVED)
    assert event["lib"] == ""


@pytest.mark.parametrize(
    ("payload", "query", "token"),
    [
        ({"api_key": "a", "token": "b", "batch": [{"api_key": "c"}]}, "q", "a"),
        ({"token": "b", "batch": [{"api_key": "c"}]}, "q", "b"),
        ({"batch": [{"event": "e", "properties": {"token": "p"}}, {"api_key": "c"}]}, "q", "c"),
        ({"batch": [{"token": "t"}]}, "q", "t"),
        ([{"event": "e", "properties": {"token": "p"}}], "q", "p"),
        ([{"event": "e"}], "q", "q"),
        ({"api_key": "  ", "batch": [{"event": "e"}]}, None, None),
        ({"api_key": 5, "batch": [{"event": "e"}]}, None, None),
    ],
)
def test_token_choice(payload: object, query: str | None, token: str | None) -> None:
    assert envelope(payload, query).token == token


def test_distinct_id_top_level_wins_and_numbers_become_strings() -> None:
    events = run(
        {
            "api_key": "t",
            "batch": [
                {"event": "a", "distinct_id": "top", "properties": {"distinct_id": "props"}},
                {"event": "b", "properties": {"distinct_id": 12345}},
                {"event": "c", "distinct_id": 1.5},
            ],
        }
    )
    assert [e["distinct_id"] for e in events] == ["top", "12345", "1.5"]


def test_uuid_is_canonicalized_or_assigned() -> None:
    upper = "DE5FF3F4-475A-407A-A1BB-661A63444C97"
    kept, assigned = run(
        {
            "api_key": "t",
            "batch": [{"event": "a", "distinct_id": "d", "uuid": upper}, {"event": "b", "distinct_id": "d"}],
        }
    )
    assert kept["uuid"] == upper.lower()
    assert uuid.UUID(assigned["uuid"]).version == 4


def test_set_in_properties_when_not_at_the_top_level() -> None:
    [event] = run(
        {
            "api_key": "t",
            "event": "$set",
            "distinct_id": "d",
            "properties": {"$set": {"a": 1}, "$set_once": {"b": 2}},
        }
    )
    assert (event["set"], event["set_once"]) == ({"a": 1}, {"b": 2})


def test_invalid_events_are_listed_by_index_and_nothing_is_returned() -> None:
    payload = {
        "api_key": "t",
        "batch": [
            {"event": "ok", "distinct_id": "d"},
            {"distinct_id": "d"},
            {"event": "x"},
            {"event": "x", "distinct_id": "d", "uuid": "not-a-uuid"},
            {"event": "x", "distinct_id": "d", "properties": ["not", "an", "object"]},
            {"event": "x", "distinct_id": "d", "timestamp": "yesterday-ish"},
            "just a string",
            {"event": "x", "distinct_id": "d", "$set": "nope"},
            {"event": "ok", "distinct_id": "d"},
        ],
    }
    error = rejected(payload)
    assert (error.status, error.code) == (400, "invalid_events")
    assert [(e.index, e.field) for e in error.errors] == [
        (1, "event"),
        (2, "distinct_id"),
        (3, "uuid"),
        (4, "properties"),
        (5, "timestamp"),
        (6, "event"),
        (7, "$set"),
    ]
    assert "yesterday-ish" in error.errors[4].reason


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("a string", "invalid_payload"),
        (17, "invalid_payload"),
        ({"api_key": "t", "batch": {"event": "x"}}, "invalid_payload"),
        ({"api_key": "t", "batch": []}, "empty_batch"),
        ([], "empty_batch"),
    ],
)
def test_shapes_without_events_are_400(payload: object, code: str) -> None:
    with pytest.raises(Rejected) as caught:
        envelope(payload)
    assert (caught.value.status, caught.value.code) == (400, code)


# ---- clock skew, as PostHog does it ----

T = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def event_at(envelope_sent_at: object = None, **fields: Any) -> str:
    body: dict[str, Any] = {"api_key": "t", "batch": [{"event": "e", "distinct_id": "d", **fields}]}
    if envelope_sent_at is not None:
        body["sent_at"] = envelope_sent_at
    [event] = run(body, received=T)
    return str(event["timestamp"])


def test_skew_client_clock_behind() -> None:
    # client clock 1 h behind: event 5 s before sending -> 5 s before we received it
    assert (
        event_at(envelope_sent_at="2026-01-01T11:00:05Z", timestamp="2026-01-01T11:00:00Z")
        == "2026-01-01T11:59:55.000000Z"
    )


def test_skew_uses_the_events_own_sent_at_over_the_envelopes() -> None:
    own = event_at("2026-01-01T11:00:05Z", timestamp="2026-01-01T10:00:00Z", sent_at="2026-01-01T10:00:01Z")
    assert own == "2026-01-01T11:59:59.000000Z"


def test_skew_ignored_with_ignore_sent_at() -> None:
    ts = event_at(
        envelope_sent_at="2026-01-01T11:00:05Z",
        timestamp="2026-01-01T11:00:00Z",
        properties={"$ignore_sent_at": True},
    )
    assert ts == "2026-01-01T11:00:00.000000Z"


def test_offset_without_sent_at() -> None:
    assert event_at(offset=1500) == "2026-01-01T11:59:58.500000Z"


def test_timestamp_alone_is_kept_and_no_timestamp_is_received_at() -> None:
    assert event_at(timestamp="2025-12-31T23:00:00+02:00") == "2025-12-31T21:00:00.000000Z"
    assert event_at(timestamp="2025-12-31T23:00:00") == "2025-12-31T23:00:00.000000Z"  # no zone = UTC
    assert event_at() == "2026-01-01T12:00:00.000000Z"


def test_epoch_timestamps() -> None:
    ms = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000)
    assert event_at(timestamp=ms) == "2025-06-01T00:00:00.000000Z"
    assert event_at(timestamp=ms / 1000) == "2025-06-01T00:00:00.000000Z"
    assert event_at(properties={"$time": ms / 1000 + 0.25}) == "2025-06-01T00:00:00.250000Z"


def test_more_than_23_hours_in_the_future_becomes_received_at() -> None:
    assert event_at(timestamp="2026-01-02T11:30:00Z") == "2026-01-01T12:00:00.000000Z"
    assert event_at(timestamp="2026-01-02T10:30:00Z") == "2026-01-02T10:30:00.000000Z"
    assert event_at(offset=-25 * 3600 * 1000) == "2026-01-01T12:00:00.000000Z"


def test_unparsable_sent_at_is_ignored() -> None:
    assert (
        event_at(envelope_sent_at="whenever", timestamp="2026-01-01T11:00:00Z")
        == "2026-01-01T11:00:00.000000Z"
    )


def test_corrected_timestamp_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError):
        corrected_timestamp(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC), None, T)


def test_parse_time_rejects_nonsense() -> None:
    for value in ("", "2026-13-01", True, None, [1], 1e300):
        with pytest.raises(ValueError):
            parse_time(value, "auto")


def test_input_is_not_mutated() -> None:
    payload = copy.deepcopy(PYTHON_BATCH)
    run(payload)
    assert payload == PYTHON_BATCH


# ---- what no store can hold, and events out of bounds (cleaned by the app before normalize) ----

LIMITS = Limits(max_depth=3, max_keys=100, max_key_length=100)


def cleaned(payload: object) -> Envelope:
    env = envelope(payload)
    return dataclasses.replace(env, events=[clean(raw, LIMITS)[0] for raw in env.events])


def out_of_bounds(raw: object) -> OutOfBounds:
    with pytest.raises(OutOfBounds) as caught:
        clean(raw, LIMITS)
    return caught.value


def test_a_cleaned_event_carries_u_fffd_in_every_field() -> None:
    raw = {
        "event": "signed\x00up",
        "distinct_id": "user\x00",
        "$set": {"plan\x00": "pro\ud83d"},
        "properties": {"$anon_distinct_id": "anon\x00", "$set_once": {"first": "\udc00"}, "t\x00": 1},
    }
    [event] = normalize(cleaned({"api_key": "t", "batch": [raw]}), 7, "t", RECEIVED, None)
    assert (event["event"], event["distinct_id"]) == ("signed\ufffdup", "user\ufffd")
    assert event["set"] == {"plan\ufffd": "pro\ufffd"}
    assert event["set_once"] == {"first": "\ufffd"}
    assert event["properties"] == {
        "$anon_distinct_id": "anon\ufffd",
        "$set_once": {"first": "\ufffd"},
        "t\ufffd": 1,
    }


def test_an_event_out_of_bounds_is_listed_with_its_path() -> None:
    deep = {"event": "x", "distinct_id": "d", "properties": {"a": {"b": {}}}}
    env = dataclasses.replace(
        envelope({"api_key": "t", "batch": [{"event": "ok", "distinct_id": "d"}, deep]}),
        events=[{"event": "ok", "distinct_id": "d"}, out_of_bounds(deep)],
    )
    with pytest.raises(Rejected) as caught:
        normalize(env, 7, "t", RECEIVED, None)
    assert (caught.value.status, caught.value.code) == (400, "invalid_events")
    assert [(e.index, e.field, e.reason) for e in caught.value.errors] == [
        (1, "properties.a.b", "too_deep: more than 3 nested objects and arrays")
    ]
    [ok, dropped] = normalize_each(env, 7, "t", RECEIVED, None)
    assert isinstance(ok, dict) and ok["event"] == "ok"
    assert dropped == EventError(1, "properties.a.b", "too_deep: more than 3 nested objects and arrays")


def test_too_many_keys_at_the_top_names_the_event() -> None:
    env = dataclasses.replace(
        envelope({"event": "x", "distinct_id": "d"}),
        events=[out_of_bounds({f"k{i}": i for i in range(101)})],
    )
    [error] = normalize_each(env, 7, "t", RECEIVED, None)
    assert error == EventError(0, "event", "too_many_keys: 101 keys, more than 100")


def test_years_1_and_9999_are_kept_or_clamped_and_offsets_out_of_range_are_invalid() -> None:
    assert event_at(timestamp="0001-01-01T00:00:00Z") == "0001-01-01T00:00:00.000000Z"
    assert event_at(timestamp="9999-12-31T23:59:59Z") == "2026-01-01T12:00:00.000000Z"  # the future: now
    for fields in (
        {"timestamp": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC
        {"timestamp": "9999-12-31T23:59:59-01:00"},  # after year 9999 in UTC
        {"timestamp": "0001-01-01T00:00:00Z", "sent_at": "9999-12-31T00:00:00Z"},
        {"timestamp": 2**70},
        {"offset": 1e300},
    ):
        error = rejected({"api_key": "t", "batch": [{"event": "e", "distinct_id": "d", **fields}]})
        assert [(e.index, e.field) for e in error.errors] == [(0, "timestamp")]

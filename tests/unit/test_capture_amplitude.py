"""Amplitude payloads -> normalized events, and the 400 bodies its SDKs act on (PROTOCOLS.md §4-6)."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from workers.capture import Event, Rejected
from workers.capture.amplitude import INSERT_ID_NAMESPACE, envelope, identify_payload, normalize
from workers.sanitize import Limits, OutOfBounds, clean

RECEIVED = datetime(2026, 11, 22, 5, 46, 23, tzinfo=UTC)

# PROTOCOLS.md §4: amplitude-analytics 1.3.0 (Python), POST /2/httpapi
PYTHON_BODY: dict[str, Any] = {
    "api_key": "amp_rec_key",
    "events": [
        {
            "device_id": "device-ampy-1",
            "event_properties": {"price": 9.5, "tags": ["a", "b"], "url": "https://shop.example/p/1"},
            "event_type": "Page Viewed",
            "insert_id": "ins-ampy-2_httpapi-1",
            "library": "amplitude-python/1.3.0",
            "time": 1795326382860,
            "user_id": "user-ampy-1",
        },
        {
            "device_id": "device-ampy-1",
            "event_type": "$identify",
            "insert_id": "3f0c24de-8a40-4c1c-9a4e-1a1f0e0c5a77",
            "library": "amplitude-python/1.3.0",
            "time": 1795326382860,
            "user_id": "user-ampy-1",
            "user_properties": {
                "$add": {"logins": 1},
                "$append": {"tags": "x"},
                "$set": {"plan": "pro"},
                "$setOnce": {"first_source": "ads"},
                "$unset": {"tmp": "-"},
            },
        },
    ],
    "options": {"min_id_length": 1},
}

# PROTOCOLS.md §5: @amplitude/analytics-node 1.5.73
NODE_BODY: dict[str, Any] = {
    "api_key": "amp_rec_key",
    "events": [
        {
            "time": 1795326410813,
            "insert_id": "ins-amnode-2httpapi-1",
            "event_type": "Page Viewed",
            "user_id": "user-amnode-1",
            "device_id": "device-amnode-1",
            "event_properties": {"url": "https://shop.example/p/1", "price": 9.5},
            "event_id": 0,
            "library": "amplitude-node-ts/1.5.73",
        }
    ],
    "options": {},
    "client_upload_time": "2026-11-22T05:46:50.815Z",
}


def run(payload: object, project_id: int = 7, received: datetime = RECEIVED) -> list[Event]:
    return normalize(envelope(payload), project_id, received, "198.51.100.4")


def body(*events: object, **top: Any) -> dict[str, Any]:
    return {"api_key": "k", "events": list(events), **top}


def rejected(payload: object) -> Rejected:
    with pytest.raises(Rejected) as caught:
        run(payload)
    return caught.value


def test_python_sdk_body() -> None:
    page, identify = run(PYTHON_BODY)
    assert (page["event"], page["distinct_id"], page["project_id"], page["token"]) == (
        "Page Viewed",
        "user-ampy-1",
        7,
        "amp_rec_key",
    )
    assert page["properties"] == {
        "price": 9.5,
        "tags": ["a", "b"],
        "url": "https://shop.example/p/1",
        "$device_id": "device-ampy-1",
        "$user_id": "user-ampy-1",
        "$insert_id": "ins-ampy-2_httpapi-1",
        "$lib": "amplitude-python/1.3.0",
    }
    assert page["timestamp"] == "2026-11-22T05:46:22.860000Z"  # no client_upload_time: time as is
    assert (page["sent_at"], page["ip"], page["protocol"]) == (None, "198.51.100.4", "amplitude")
    assert page["lib"] == "amplitude-python/1.3.0"
    assert page["user_properties"] is None
    assert identify["user_properties"] == PYTHON_BODY["events"][1]["user_properties"]  # untouched
    assert (identify["set"], identify["set_once"]) == (None, None)


def test_node_sdk_body_is_skew_corrected_with_client_upload_time() -> None:
    [event] = run(NODE_BODY)
    # time is 2 ms before client_upload_time -> 2 ms before received_at
    assert event["timestamp"] == "2026-11-22T05:46:22.998000Z"
    assert event["sent_at"] == "2026-11-22T05:46:50.815000Z"
    assert event["properties"]["$event_id"] == 0
    assert event["distinct_id"] == "user-amnode-1"


def test_insert_id_gives_a_deterministic_uuid_per_project_and_user() -> None:
    first = run(PYTHON_BODY)
    again = run(copy.deepcopy(PYTHON_BODY))
    assert [e["uuid"] for e in first] == [e["uuid"] for e in again]
    expected = uuid.uuid5(INSERT_ID_NAMESPACE, "7:user-ampy-1:ins-ampy-2_httpapi-1")
    assert first[0]["uuid"] == str(expected)
    assert run(PYTHON_BODY, project_id=8)[0]["uuid"] != first[0]["uuid"]


def test_without_insert_id_each_event_gets_a_new_uuid() -> None:
    payload = body({"event_type": "e", "device_id": "device-1"})
    assert run(payload)[0]["uuid"] != run(payload)[0]["uuid"]


def test_device_id_is_the_distinct_id_without_user_id() -> None:
    [event] = run(body({"event_type": "e", "device_id": "device-1", "time": 1795326382860}))
    assert event["distinct_id"] == "device-1"
    assert "$user_id" not in event["properties"]


def test_other_top_level_fields_become_dollar_properties_unless_present() -> None:
    [event] = run(
        body(
            {
                "event_type": "purchase",
                "user_id": "user-1",
                "platform": "iOS",
                "os_name": "ios",
                "app_version": "2.1",
                "groups": {"company": "acme"},
                "revenue": 9.99,
                "ip": "192.0.2.1",
                "session_id": 1795326382000,
                "event_properties": {"$platform": "mine"},
                "city": None,
            }
        )
    )
    props = event["properties"]
    assert props["$platform"] == "mine"
    assert (props["$os_name"], props["$app_version"], props["$revenue"]) == ("ios", "2.1", 9.99)
    assert props["$groups"] == {"company": "acme"}
    assert props["$ip"] == "192.0.2.1"
    assert props["$session_id"] == "1795326382000"
    assert "$city" not in props


def test_session_id_minus_one_means_no_session() -> None:
    [event] = run(body({"event_type": "e", "user_id": "user-1", "session_id": -1}))
    assert "$session_id" not in event["properties"]


def test_min_id_length_option() -> None:
    assert (
        run(body({"event_type": "e", "user_id": "ab"}, options={"min_id_length": 2}))[0]["distinct_id"]
        == "ab"
    )
    error = rejected(body({"event_type": "e", "user_id": "ab"}))
    assert error.extra == {"events_with_invalid_id_lengths": {"user_id": [0]}}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"events": [{"event_type": "e", "user_id": "user-1"}]}, "api_key"),
        ({"api_key": "", "events": [{"event_type": "e", "user_id": "user-1"}]}, "api_key"),
        ({"api_key": "k"}, "events"),
        ({"api_key": "k", "events": []}, "events"),
        ({"api_key": "k", "events": {"event_type": "e"}}, "events"),
    ],
)
def test_missing_api_key_or_events_names_the_missing_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(Rejected) as caught:
        envelope(payload)
    assert caught.value.status == 400
    assert caught.value.extra == {"missing_field": field}
    assert caught.value.detail == "Request missing required field"


def test_not_an_object_is_400() -> None:
    with pytest.raises(Rejected) as caught:
        envelope([{"event_type": "e"}])
    assert caught.value.status == 400


def test_bad_events_are_listed_by_kind_and_field_so_the_sdk_drops_only_them() -> None:
    error = rejected(
        body(
            {"event_type": "ok", "user_id": "user-1"},
            {"user_id": "user-1"},
            {"event_type": "e"},
            {"event_type": "e", "device_id": "abc"},
            {"event_type": "e", "user_id": "user-1", "time": "2026-01-01"},
            {"event_type": "e", "user_id": "user-1", "time": 1.5},
            {"event_type": "e", "user_id": "user-1", "event_properties": [1]},
            {"event_type": 5, "user_id": "user-1"},
            "not an event",
            {"event_type": "e", "user_id": "user-1", "user_properties": "x"},
            {"event_type": "ok", "device_id": "device-1"},
        )
    )
    assert (error.status, error.code, error.detail) == (
        400,
        "invalid_events",
        "Invalid field values on some events",
    )
    assert error.extra == {
        "events_with_missing_fields": {"event_type": [1], "user_id": [2]},
        "events_with_invalid_id_lengths": {"device_id": [3]},
        "events_with_invalid_fields": {
            "time": [4, 5],
            "event_properties": [6],
            "event_type": [7],
            "event": [8],
            "user_properties": [9],
        },
    }
    assert [e.index for e in error.errors] == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_time_out_of_range_is_invalid() -> None:
    error = rejected(body({"event_type": "e", "user_id": "user-1", "time": 10**18}))
    assert error.extra == {"events_with_invalid_fields": {"time": [0]}}


def test_numeric_ids_become_strings() -> None:
    [event] = run(body({"event_type": "e", "user_id": 1234567, "insert_id": 99}))
    assert event["distinct_id"] == "1234567"
    assert event["properties"]["$insert_id"] == "99"


# ---- what no store can hold, and events out of bounds (cleaned by the app before normalize) ----

LIMITS = Limits(max_depth=3, max_keys=100, max_key_length=100)


def test_a_cleaned_event_carries_u_fffd_in_every_field_and_user_property_operation() -> None:
    raw = {
        "event_type": "Bought\x00",
        "user_id": "user\x00",
        "device_id": "device\ud83d",
        "event_properties": {"sku\x00": "\x00"},
        "user_properties": {
            "$set": {"plan\x00": "pro\x00"},
            "$setOnce": {"source": "\udc00"},
            "$add": {"logins\x00": 1},
            "$append": {"tags": "\x00"},
        },
    }
    env = envelope(body(raw))
    env = dataclasses.replace(env, events=[clean(event, LIMITS)[0] for event in env.events])
    [event] = normalize(env, 7, RECEIVED, None)
    assert (event["event"], event["distinct_id"]) == ("Bought\ufffd", "user\ufffd")
    assert event["properties"]["$device_id"] == "device\ufffd"
    assert event["properties"]["sku\ufffd"] == "\ufffd"
    assert event["user_properties"] == {
        "$set": {"plan\ufffd": "pro\ufffd"},
        "$setOnce": {"source": "\ufffd"},
        "$add": {"logins\ufffd": 1},
        "$append": {"tags": "\ufffd"},
    }


def test_an_event_out_of_bounds_is_listed_so_the_sdk_drops_only_it() -> None:
    deep = {"event_type": "e", "user_id": "user-1", "event_properties": {"a": {"b": {}}}}
    with pytest.raises(OutOfBounds) as out_of_bounds:
        clean(deep, LIMITS)
    env = envelope(body({"event_type": "ok", "user_id": "user-1"}, deep))
    env = dataclasses.replace(env, events=[env.events[0], out_of_bounds.value])
    with pytest.raises(Rejected) as error:
        normalize(env, 7, RECEIVED, None)
    assert error.value.extra == {"events_with_invalid_fields": {"event_properties.a.b": [1]}}
    assert [e.reason for e in error.value.errors] == ["too_deep: more than 3 nested objects and arrays"]


def test_identify_api_reads_lone_surrogate_escapes() -> None:
    form = (
        b"api_key=k&identification=" + b'{"user_id":"user-1","user_properties":{"$set":{"name":"Zo\\ud83d"}}}'
    )
    payload = identify_payload(form, "application/x-www-form-urlencoded")
    assert payload == {
        "api_key": "k",
        "events": [
            {
                "user_id": "user-1",
                "user_properties": {"$set": {"name": "Zo\ud83d"}},
                "event_type": "$identify",
            }
        ],
    }
    json_body = b'{"api_key": "k", "identification": {"user_id": "user-\\udc00"}}'
    assert identify_payload(json_body, "application/json")["events"] == [
        {"user_id": "user-\udc00", "event_type": "$identify"}
    ]

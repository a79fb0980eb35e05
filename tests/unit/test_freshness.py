"""The pure parts of freshness, lag and reconciliation (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from workers import contract
from workers.freshness import AcceptedCounts, accepted_row, heartbeat_row, heartbeats, is_heartbeat, passed_on
from workers.kafka import Message
from workers.lag import lag
from workers.reconcile import parked_key
from workers.sanitize import Limits

NOW = datetime(2026, 12, 1, 17, 5, 9, 123456, tzinfo=UTC)
LIMITS = Limits(64, 10_000, 1024)


def test_a_heartbeat_per_partition_goes_to_that_partition_and_on_to_the_same_one() -> None:
    records = heartbeats("capture-1", [0, 1, 2], NOW)
    assert [r.partition for r in records] == [0, 1, 2]
    message = Message("events_raw", 2, 41, records[2].key, records[2].value, records[2].headers)
    assert is_heartbeat(message)
    assert not is_heartbeat(Message("events_raw", 2, 42, None, b"{}"))
    onward = passed_on(message)
    assert (onward.partition, onward.value, onward.headers) == (2, records[2].value, records[2].headers)
    assert heartbeat_row(records[2].value) == ("capture-1", 2, NOW)


@pytest.mark.parametrize(
    "value", [b"[]", b"{}", b'{"source": "c", "partition": -1, "sent_at": "2026-12-01T00:00:00Z"}']
)
def test_a_broken_heartbeat_is_refused(value: bytes) -> None:
    with pytest.raises(contract.Invalid):
        heartbeat_row(value)


def test_accepted_counts_are_running_totals_sent_once_per_change() -> None:
    counts = AcceptedCounts("capture-1")
    events = [{"project_id": 1, "timestamp": "2026-12-01T17:59:59.000000Z"}] * 3
    counts.add([*events, {"project_id": 2, "timestamp": "2026-12-01T18:00:00.000000Z"}])
    first = counts.records(NOW)
    assert [orjson.loads(r.value)["count"] for r in first] == [3, 1]
    counts.add(events[:1])  # one more for project 1 while the first rows were on their way
    counts.sent(first)
    second = counts.records(NOW)
    assert [orjson.loads(r.value) for r in second] == [
        {"project_id": 1, "hour": "2026-12-01T17:00:00+00:00", "source": "capture-1", "count": 4,
         "updated_at": "2026-12-01T17:05:09.123456+00:00"}
    ]  # fmt: skip
    counts.sent(second)
    assert counts.records(NOW) == []
    assert accepted_row(second[0].value, LIMITS, "writer") == (
        1, datetime(2026, 12, 1, 17, tzinfo=UTC), "capture-1", 4, NOW
    )  # fmt: skip


def test_lag_is_the_reported_end_minus_the_commit_where_the_end_is_known() -> None:
    ends = {("events", 0): 10, ("events", 1): 4}
    committed = {("events", 0): 7, ("events", 1): 4, ("events", 2): 0}
    assert lag(ends, committed) == {("events", 0): 3, ("events", 1): 0}


def test_a_parked_event_counts_in_its_project_and_utc_hour() -> None:
    value = orjson.dumps({"project_id": 3, "timestamp": "2026-12-01T19:30:00+02:00"})
    assert parked_key(value) == (3, int(datetime(2026, 12, 1, 17, tzinfo=UTC).timestamp()))
    assert parked_key(b"not json") is None
    assert parked_key(b'{"project_id": "3", "timestamp": "2026-12-01T17:00:00Z"}') is None

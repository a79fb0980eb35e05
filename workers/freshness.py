"""Freshness and accepted counts (issue 10): what capture sends every HEARTBEAT_SECONDS, and how the writer
stores it.

- A heartbeat per partition of `events_raw`, produced to that partition with the header `ua_internal:
  heartbeat`. persons passes it on to the same partition of `events` untouched (no person, no identity); the
  writer stores it in `heartbeats`, not in `events`, and `ua_pipeline_freshness_seconds` is now minus the
  capture time of the newest one stored. It waits behind every event before it in both topics, so it
  measures the whole pipeline. (The Flink job drops it: it has no uuid nor distinct id.)
- Each capture process's running total of accepted events per project and UTC hour of the event's
  timestamp, on `accepted_counts`, for `workers.reconcile`. A row is (process, project, hour, total): a
  redelivered or repeated row changes nothing (the table keeps the highest total).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from workers import contract
from workers.kafka import Message, Record
from workers.metrics import PIPELINE_FRESHNESS, PIPELINE_PARTITION_FRESHNESS
from workers.sanitize import Limits

HEADER = "ua_internal"
HEARTBEAT = b"heartbeat"
HEARTBEATS_TABLE = "heartbeats"
HEARTBEAT_COLUMNS = ("source", "partition", "sent_at")
ACCEPTED_COLUMNS = ("project_id", "hour", "source", "count", "updated_at")
Row = tuple[Any, ...]


def instance_id(worker: str) -> str:
    """One process's run, in heartbeats, accepted counts and produced offsets: `<worker>-<random>`."""
    return f"{worker}-{uuid.uuid4().hex[:12]}"


def is_heartbeat(message: Message) -> bool:
    return any(name == HEADER and value == HEARTBEAT for name, value in message.headers)


def heartbeats(source: str, partitions: Sequence[int], now: datetime) -> list[Record]:
    """One heartbeat for each partition, produced to it. Its `timestamp` (the send time) moves the Flink
    job's watermark on a partition no event reaches: the job drops the heartbeat (no uuid) after reading
    its time, and without it such a partition, never idle, would hold every window open."""
    sent = now.astimezone(UTC).isoformat()
    return [
        Record(
            None,
            orjson.dumps({"source": source, "partition": p, "sent_at": sent, "timestamp": sent}),
            ((HEADER, HEARTBEAT),),
            partition=p,
        )
        for p in partitions
    ]


def passed_on(message: Message) -> Record:
    """A heartbeat as persons sends it on: the same bytes and headers, to the same partition."""
    return Record(message.key, message.value, message.headers, partition=message.partition)


def heartbeat_row(value: bytes) -> Row:
    """A heartbeat as a row in HEARTBEAT_COLUMNS order; `contract.Invalid` says what is wrong."""
    try:
        beat = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise contract.Invalid("invalid_json", str(exc)) from None
    if type(beat) is not dict:
        raise contract.Invalid("not_an_object", "a heartbeat is a JSON object")
    source, partition = beat.get("source"), beat.get("partition")
    if type(source) is not str or type(partition) is not int or not 0 <= partition < 2**31:
        raise contract.Invalid("invalid_field", "a heartbeat needs a string source and a partition number")
    return (source, partition, contract.instant(beat, "sent_at"))


class AcceptedCounts:
    """capture's running totals of accepted events per (project, hour), and which changed since the last
    rows were taken. A total not changed for `keep_seconds` is forgotten (its hour restarts from 0 under a
    new process id if events for it come again, which keeps rows idempotent)."""

    def __init__(self, source: str, keep_seconds: float = 7 * 86400) -> None:
        self.source = source
        self._keep = keep_seconds
        self._totals: dict[tuple[int, str], int] = {}
        self._touched: dict[tuple[int, str], float] = {}
        self._changed: set[tuple[int, str]] = set()

    def add(self, events: Sequence[dict[str, Any]]) -> None:
        """Count events Kafka acknowledged. Their `timestamp` is capture's: ISO-8601 UTC ending in `Z`."""
        now = time.monotonic()
        for event in events:
            key = (event["project_id"], event["timestamp"][:13])
            self._totals[key] = self._totals.get(key, 0) + 1
            self._touched[key] = now
            self._changed.add(key)

    def records(self, now: datetime) -> list[Record]:
        """The changed totals as `accepted_counts` messages; call `sent` once they are acknowledged."""
        updated_at = now.astimezone(UTC).isoformat()
        rows = (
            {"project_id": project_id, "hour": f"{hour}:00:00+00:00", "source": self.source,
             "count": self._totals[(project_id, hour)], "updated_at": updated_at}
            for project_id, hour in sorted(self._changed)
        )  # fmt: skip
        return [Record(f"{row['project_id']}:{row['hour']}".encode(), orjson.dumps(row)) for row in rows]

    def sent(self, records: Sequence[Record]) -> None:
        for record in records:
            row = orjson.loads(record.value)
            key = (row["project_id"], row["hour"][:13])
            if self._totals.get(key) == row["count"]:
                self._changed.discard(key)
        cutoff = time.monotonic() - self._keep
        for key in [k for k, t in self._touched.items() if t < cutoff and k not in self._changed]:
            del self._totals[key], self._touched[key]


def accepted_row(value: bytes, limits: Limits, stage: str) -> Row:
    """An `accepted_counts` message as a row in ACCEPTED_COLUMNS order."""
    row = contract.parse(value, limits, stage)
    source, count = row.get("source"), row.get("count")
    if type(source) is not str or not source or type(count) is not int or count < 0:
        raise contract.Invalid("invalid_field", "accepted_counts needs a source and a non-negative count")
    return (
        row["project_id"],
        contract.instant(row, "hour"),
        source,
        count,
        contract.instant(row, "updated_at"),
    )


class Freshness:
    """The capture time of the newest stored heartbeat of each partition, served as now minus it."""

    def __init__(self) -> None:
        self._newest: dict[int, float] = {}
        PIPELINE_FRESHNESS.set_function(self.stalest)

    def stored(self, rows: Sequence[Row]) -> None:
        for _, partition, sent_at in rows:
            seen = sent_at.timestamp()
            if seen > self._newest.get(partition, float("-inf")):
                if partition not in self._newest:
                    PIPELINE_PARTITION_FRESHNESS.labels(str(partition)).set_function(self._since(partition))
                self._newest[partition] = seen

    def _since(self, partition: int) -> Callable[[], float]:
        return lambda: time.time() - self._newest[partition]

    def stalest(self) -> float:
        """Seconds since the newest heartbeat of the partition that has gone longest without one (NaN
        before any)."""
        return time.time() - min(self._newest.values()) if self._newest else float("nan")

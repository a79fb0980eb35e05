"""The Flink job (flink/job.py) on its local mini-cluster against a broker of its own, compared with
tests/flink/reference.py on ~21.7k messages from tests/flink/traffic.py: once bounded, once killed with
kill -9 and resumed from its retained checkpoint."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from flink.job import newest_checkpoint
from tests.components import Tansu, free_port
from tests.flink.reference import epoch_ms, reference
from tests.flink.traffic import generate
from workers.kafka import EVENT_COUNTS_1M, EVENTS, LATE_EVENTS, SESSIONS, ensure_topics
from workers.settings import Settings

pytestmark = [pytest.mark.flink, pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = Settings.from_env({})
STREAM = generate(20_000)


@pytest.fixture(scope="module")
def expected() -> tuple[list[dict], list[dict], list[dict]]:
    return reference([dict(e) for e in STREAM], DEFAULTS.flink_lateness_seconds, DEFAULTS.session_gap_minutes)


def test_the_stream_has_what_the_job_must_handle(expected: tuple[list[dict], list[dict], list[dict]]) -> None:
    sessions, counts, late = expected
    assert (len(STREAM), len({e["uuid"] for e in STREAM})) == (21_737, 21_315)
    assert {e["project_id"] for e in STREAM} == {1, 2}
    assert {s["kind"] for s in sessions} == {"explicit", "amplitude", "window"}
    assert (len(sessions), len(counts), len(late)) == (1_542, 12_705, 104)


def job_env(broker: Tansu, checkpoints: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "FLINK_CHECKPOINT_DIR": str(checkpoints),
        "FLINK_CHECKPOINT_SECONDS": "2",
        "FLINK_JARS_DIR": str(ROOT / "var" / "flink-jars"),
        # the mini-cluster's REST API and the job's /metrics: not the ports of a job `make up` runs
        "FLINK_REST_PORT": str(free_port()),
        "FLINK_METRICS_PORT": str(free_port()),
    }


def start_job(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "flink.job", *args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


async def create_topics(broker: Tansu) -> None:
    await ensure_topics(
        Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "KAFKA_TOPIC_PARTITIONS": "1"})
    )


async def produce(broker: Tansu, events: list[dict]) -> dict[str, int]:
    """Send in order; the end offset (exclusive) of each partition, from the acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        sent = [await producer.send(EVENTS, orjson.dumps(e), key=f"{e['token']}:{e['distinct_id']}".encode())
                for e in events]  # fmt: skip
        acks = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    ends: dict[str, int] = {}
    for ack in acks:
        ends[str(ack.partition)] = max(ends.get(str(ack.partition), 0), ack.offset + 1)
    return ends


async def read(broker: Tansu, topic: str, idle_seconds: float = 3.0) -> list[dict]:
    """Everything in the topic: Tansu's end offsets are wrong, so read until nothing came for a while."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)  # fmt: skip
    await consumer.start()
    rows: list[dict] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_seconds:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                rows += [orjson.loads(r.value) for r in records]
                last = time.monotonic()
    finally:
        await consumer.stop()
    return rows


async def committed(broker: Tansu) -> int:
    """The job's committed offset on `events` (one partition): Flink commits it when a checkpoint completes."""
    group = f"{DEFAULTS.kafka_consumer_group_prefix}-flink"
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(EVENTS, 0)) or 0
    finally:
        await consumer.stop()


async def wait_committed(broker: Tansu, offset: int, job: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while await committed(broker) < offset:
        assert job.poll() is None, tail(log)
        assert time.monotonic() < deadline, f"the group's offset is not {offset} after 120 s"
        await asyncio.sleep(0.5)


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


def kill(job: subprocess.Popen[bytes]) -> None:
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()


async def outputs(broker: Tansu) -> tuple[list[dict], list[dict], list[dict]]:
    """The three topics, times as epoch ms and actor sets read and sorted, after checking their spelling."""
    sessions, counts, late = await asyncio.gather(read(broker, SESSIONS), read(broker, EVENT_COUNTS_1M),
                                                  read(broker, LATE_EVENTS))  # fmt: skip
    for s in sessions:
        assert s["start"].endswith("Z") and s["end"].endswith("Z"), s
        s["start"], s["end"] = epoch_ms(s["start"]), epoch_ms(s["end"])
    for c in counts:
        assert c["minute"].endswith("Z") and len(set(c["actors"])) == len(c["actors"]), c
        c["minute"], c["actors"] = epoch_ms(c["minute"]), sorted(orjson.loads(a) for a in c["actors"])
    return sessions, counts, late


def assert_as_reference(
    got: tuple[list[dict], list[dict], list[dict]], expected: tuple[list[dict], ...]
) -> None:
    sessions, counts, late = got
    ref_sessions, ref_counts, ref_late = expected
    by_session = lambda s: (s["session_id"], s["start"])  # noqa: E731
    assert sorted(sessions, key=by_session) == sorted(ref_sessions, key=by_session)
    by_minute = lambda c: (c["project_id"], c["event"], c["minute"])  # noqa: E731
    assert sorted(counts, key=by_minute) == sorted(ref_counts, key=by_minute)
    fields = ("uuid", "project_id", "event", "distinct_id", "person_id", "timestamp")
    as_read = sorted(tuple(e[f] for f in fields) for e in ref_late)
    assert sorted(tuple(e[f] for f in fields) for e in late) == as_read


async def test_a_bounded_run_outputs_what_the_reference_computes(
    broker: Tansu, tmp_path: Path, expected: tuple[list[dict], list[dict], list[dict]]
) -> None:
    await create_topics(broker)
    ends = await produce(broker, STREAM)
    started = time.monotonic()
    job = start_job(
        job_env(broker, tmp_path / "checkpoints"), tmp_path / "job.log", "--bounded-offsets", json.dumps(ends)
    )
    rc = await asyncio.to_thread(job.wait, 240)
    print(f"bounded run of {len(STREAM)} messages: {time.monotonic() - started:.1f} s")
    assert rc == 0, tail(tmp_path / "job.log")
    assert_as_reference(await outputs(broker), expected)


async def test_killed_and_resumed_from_its_checkpoint_it_outputs_the_same(
    broker: Tansu, tmp_path: Path, expected: tuple[list[dict], list[dict], list[dict]]
) -> None:
    await create_topics(broker)
    env, log = job_env(broker, tmp_path / "checkpoints"), tmp_path / "job.log"
    first = await produce(broker, STREAM[:10_000])
    job = start_job(env, log)
    try:
        await wait_committed(broker, first["0"], job, log)
    finally:
        kill(job)
    assert newest_checkpoint(tmp_path / "checkpoints") is not None
    # a sentinel two days after everything: its watermark fires every window the stream left open
    last = max(epoch_ms(e["timestamp"]) for e in STREAM) + 2 * 86_400_000
    flush = {"uuid": str(uuid.uuid4()), "project_id": 999, "event": "flush", "distinct_id": "flush",
             "person_id": "flush", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last / 1000)),
             "protocol": "posthog", "token": "flush", "properties": {}}  # fmt: skip
    end = await produce(broker, [*STREAM[10_000:], flush])
    job = start_job(env, log)
    try:
        await wait_committed(broker, end["0"], job, log)
    finally:
        kill(job)
    assert "flink: submitting (resuming from " in await asyncio.to_thread(log.read_text)
    sessions, counts, late = await outputs(broker)
    distinct = lambda rows: list({orjson.dumps(r, option=orjson.OPT_SORT_KEYS): r for r in rows}.values())  # noqa: E731
    sessions, counts, late = distinct(sessions), distinct(counts), distinct(late)
    # a repeat is the same row again, never a partial one
    assert len({(s["session_id"], s["start"]) for s in sessions}) == len(sessions)
    assert len({(c["project_id"], c["event"], c["minute"]) for c in counts}) == len(counts)
    assert_as_reference((sessions, counts, late), expected)

"""The Flink job (flink/job.py) on its local mini-cluster: throughput beside a ceiling, delay, RSS.

    .venv/bin/python bench/flink.py [--events 200000] [--rate 500] [--seconds 60]     (make bench)
    .venv/bin/python bench/flink.py --parts delay     (the delay only; the last throughput figures are kept)

Each part starts a Tansu broker of its own; every Flink run is a subprocess in a process group of its own,
with the project's settings (env) except the broker, a fresh checkpoint dir and consumer group.

1. Throughput, at parallelism 1 (`events`: 1 partition) then 2 (2 partitions): tests/flink/traffic.py's
   stream (~--events messages, ~500 B of JSON each, with its duplicates and late events) is produced first,
   then four bounded runs (`scan.bounded.mode` specific-offsets) over it:
   - the job, `python -m flink.job --bounded-offsets` over the first 100 messages of each partition (tiny),
     then over all of them (full);
   - the ceiling, `bench/flink.py passthrough`: the job's configuration and its source table (same JSON,
     event-time column and watermark), each row written back to another topic by bench/flink_passthrough.sql
     (no dedup, no windows, no Python UDF), tiny then full. Its output is counted.
   A run is timed from the client's `submitting` line (printed right before the statements are executed) to
   the client's exit, which follows the job's end. events/s = (full - tiny messages) / (full - tiny
   seconds): the start-up and the shut-down, which the tiny run is made of, are left out; the tiny run's
   seconds (launch -> submitted, submitted -> exit) are reported as the start-up. What each run wrote is
   counted after it (the passthrough must write every message it read).
2. Delay (parallelism 1), end to end: a Postgres database of its own (tests/components.py), the real
   `capture` and `persons` workers as subprocesses (tests/faults/stack.py's Stack, which creates the project)
   on the part's broker, every topic with --partitions partitions (1), and the job unbounded. PostHog events
   go in through capture's /batch/ (one request of what is due every --tick s, one after another; no
   `sent_at`, so capture keeps the client's `timestamp`) at --rate events/s, event time running --speed times
   faster than the wall clock (from two days ago) so that sessions close within seconds: capture ->
   `events_raw` -> persons -> `events` -> the job -> `sessions`. The bench reads `events` and `sessions`.
   The sessions the job must write are tests/flink/reference.py's on what `events` holds (ids and project as
   persons and the job make them). A session (its last event at T, end T + SESSION_GAP_MINUTES) is written
   once the watermark (newest event time - FLINK_LATENESS_SECONDS; the lowest of the partitions') reaches its
   end. Its delay: from the bench sending the HTTP request that carries the first event whose event time
   minus the lateness reaches the session's end (the event that lets the watermark pass it) to the bench's
   consumer reading its `sessions` row; also from that request's response, and the part up to reading the
   event from `events`. Sessions closed in the first --warmup seconds of sending are left out.
3. RSS: VmHWM (peak VmRSS) of every process in the run's process group, read every 0.25 s: the JVM, the
   Python client (`python -m flink.job`) and the Python UDF worker(s); the total is the peak of the sum.
   In the delay part, capture's and persons' VmHWM and CPU too.

Others' CPU (cores, averaged over a run) is what processes outside this bench, its broker, its workers and
its Flink runs used meanwhile (Postgres, which persons uses, among them): another Flink test on this 2-CPU
machine shows there, and the figures are then low. The load average is printed as it was before the bench. Figures go to stdout and var/bench/flink.json.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import heapq
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from flink.job import configuration, newest_checkpoint, sql_params, statements
from tests.components import Tansu, create_database, drop_database
from tests.faults.stack import Stack
from tests.flink.reference import epoch_ms, reference
from tests.flink.traffic import generate
from workers.kafka import EVENT_COUNTS_1M, EVENTS, LATE_EVENTS, SESSIONS, TOPICS, ensure_topics
from workers.settings import Settings

PASSTHROUGH_SQL = ROOT / "bench" / "flink_passthrough.sql"
PASSTHROUGH_TOPIC = "bench_flink_passthrough"
OUTPUTS = (SESSIONS, EVENT_COUNTS_1M, LATE_EVENTS, PASSTHROUGH_TOPIC)
TINY = 100  # messages per partition in a start-up run
HZ = os.sysconf("SC_CLK_TCK")
RUN_TIMEOUT = 900.0


# ---- the ceiling, run as `bench/flink.py passthrough` (its own JVM, like the job) ----


def job_params(settings: Settings, bounded: str | None) -> dict[str, str]:
    """The parameters flink/job.py fills sql/flink/tables.sql with, and the passthrough's topic."""
    return {**sql_params(settings, bounded), "passthrough_topic": PASSTHROUGH_TOPIC}


def passthrough(bounded: str | None) -> None:
    settings = Settings.from_env()
    os.environ["JVM_ARGS"] = f"-Xmx{settings.flink_jvm_heap}"  # as flink/job.py

    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for key, value in configuration(settings, None).items():
        env.get_config().set(key, value)
    env.get_config().set("pipeline.name", "bench-flink-passthrough")
    params = job_params(settings, bounded)
    for statement in statements("tables", params):
        env.execute_sql(statement)
    sink, insert = [s.strip() for s in re.split(r";\s*$", PASSTHROUGH_SQL.read_text(), flags=re.MULTILINE)
                    if s.strip()]  # fmt: skip
    fill = lambda text: re.sub(r"\{\{(\w+)\}\}", lambda m: params[m.group(1)], text)  # noqa: E731
    env.execute_sql(fill(sink))
    params["columns"] = ", ".join(
        f"`{c}`" for c in env.from_path("passthrough_sink").get_schema().get_field_names()
    )
    print("flink: submitting", flush=True)
    env.execute_sql(fill(insert)).wait()


# ---- watching a process group ----


def processes() -> dict[int, tuple[str, int, int]]:
    """pid -> (command name, process group, CPU jiffies) for every process."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        close = raw.rfind(")")
        fields = raw[close + 2 :].split()
        out[int(entry.name)] = (
            raw[raw.find("(") + 1 : close],
            int(fields[2]),
            int(fields[11]) + int(fields[12]),
        )
    return out


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class Watch(threading.Thread):
    """Peak memory of each process in a group; the CPU it, the broker, and the processes outside `ours` use."""

    def __init__(
        self,
        group: int,
        ours: set[int],
        broker: int,
        named: dict[int, str] | None = None,
        interval: float = 0.25,
    ) -> None:
        """`named`: processes outside the group watched on their own (pid -> name), e.g. capture and persons."""
        super().__init__(daemon=True)
        self.group, self.ours, self.broker, self.interval = group, ours, broker, interval
        self.named = dict(named or {})
        self.named_jiffies = dict.fromkeys(self.named, 0)
        self.named_hwm_kb = dict.fromkeys(self.named, 0)
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (kind, VmHWM kB)
        self.peak_total_kb = 0
        self.group_jiffies = self.broker_jiffies = self.others_jiffies = 0
        self.others: dict[str, int] = {}  # command name -> jiffies, outside the bench
        self.started = time.monotonic()
        self.stopped = self.started
        self._halt = threading.Event()
        self._last: dict[int, int] = {}

    def kind(self, pid: int, name: str) -> str:
        if pid == self.group:
            return "client"
        if name == "java":
            return "jvm"
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return "other"
        # pyflink-udf-runner.sh's `python -m pyflink.fn_execution.beam.beam_boot`; not its bash, tee or helpers
        return "worker" if name.startswith("python") and b"pyflink.fn_execution" in command else "other"

    def sample(self) -> None:
        total = 0
        current = processes()
        for pid, (name, group, jiffies) in current.items():
            if group == self.group:
                rss, hwm = memory_kb(pid)
                total += rss
                kind = self.peaks[pid][0] if pid in self.peaks else self.kind(pid, name)
                self.peaks[pid] = (kind, max(hwm, self.peaks.get(pid, (kind, 0))[1]))
                self.group_jiffies += jiffies - self._last.get(pid, 0)  # a new one: all its time is the run's
            elif pid == self.broker and pid in self._last:
                self.broker_jiffies += jiffies - self._last[pid]
            elif pid in self.named:
                self.named_hwm_kb[pid] = max(self.named_hwm_kb[pid], memory_kb(pid)[1])
                self.named_jiffies[pid] += jiffies - self._last[pid] if pid in self._last else 0
            elif pid not in self.ours and pid in self._last:
                used = jiffies - self._last[pid]
                self.others_jiffies += used
                self.others[name] = self.others.get(name, 0) + used
        self._last = {pid: j for pid, (_, _, j) in current.items()}
        self.peak_total_kb = max(self.peak_total_kb, total)

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def finish(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        self.stopped = time.monotonic()
        seconds = max(self.stopped - self.started, 1e-9)
        by_kind: dict[str, list[int]] = {}
        for kind, hwm in self.peaks.values():
            by_kind.setdefault(kind, []).append(hwm)
        busy = sorted(self.others.items(), key=lambda x: -x[1])
        return {
            "peak_rss_mib": {k: round(sum(v) / 1024) for k, v in sorted(by_kind.items()) if k != "other"},
            "processes": {k: len(v) for k, v in sorted(by_kind.items())},
            "peak_total_rss_mib": round(self.peak_total_kb / 1024),
            "cores": round(self.group_jiffies / HZ / seconds, 2),
            "broker_cores": round(self.broker_jiffies / HZ / seconds, 2),
            "others_cores": round(self.others_jiffies / HZ / seconds, 2),
            "others_busiest": {
                n: round(j / HZ / seconds, 2) for n, j in busy[:3] if j / HZ / seconds >= 0.05
            },
            **({"named": {
                name: {"peak_rss_mib": round(self.named_hwm_kb[pid] / 1024),
                       "cores": round(self.named_jiffies[pid] / HZ / seconds, 2),
                       "cpu_s": round(self.named_jiffies[pid] / HZ, 1)}
                for pid, name in self.named.items()
            }} if self.named else {}),
        }  # fmt: skip


@dataclass
class FlinkRun:
    """A Flink client (`python -m flink.job ...`) in a process group of its own, timed and watched."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ours: set[int]
    broker: int
    named: dict[int, str] = field(default_factory=dict)
    launched: float = 0.0
    submitted: float | None = None
    ended: float | None = None
    process: subprocess.Popen[bytes] = field(init=False)
    watch: Watch = field(init=False)
    reader: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.launched = time.monotonic()
        self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.watch = Watch(self.process.pid, self.ours | set(self.named), self.broker, self.named)
        self.watch.start()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.log.open("wb") as out:
            for line in self.process.stdout:
                if self.submitted is None and line.startswith(b"flink: submitting"):
                    self.submitted = time.monotonic()
                out.write(line)

    def _wait(self) -> None:
        self.process.wait()
        self.ended = time.monotonic()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the run's own process group (the client, its JVM and the JVM's Python workers)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def result(self) -> dict[str, Any]:
        figures = self.watch.finish()
        self.kill()  # whatever of the group outlived the client
        self.reader.join(10)
        figures["exit_code"] = self.process.returncode
        if self.submitted is not None:
            figures["client_start_s"] = round(self.submitted - self.launched, 2)
            if self.ended is not None:
                figures["run_s"] = round(self.ended - self.submitted, 2)
        return figures

    def wait_bounded(self, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while self.ended is None:
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"{self.name}: still running after {timeout:.0f} s\n{self.tail()}")
            time.sleep(0.05)
        figures = self.result()
        if figures["exit_code"] != 0 or "run_s" not in figures:
            raise RuntimeError(f"{self.name} exited with {figures['exit_code']}:\n{self.tail()}")
        return figures


def run_env(broker: Tansu, tmp: Path, name: str, parallelism: int) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "KAFKA_CONSUMER_GROUP_PREFIX": f"bench-{name}-{uuid.uuid4().hex[:8]}",
        "FLINK_PARALLELISM": str(parallelism),
        "FLINK_CHECKPOINT_DIR": str(tmp / f"checkpoints-{name}"),
        "FLINK_JARS_DIR": os.environ.get("FLINK_JARS_DIR", str(ROOT / "var" / "flink-jars")),
    }


def ours(broker: Tansu) -> tuple[set[int], int]:
    """The bench's own processes (not "others"), and the broker's pid."""
    assert broker.process is not None
    return {os.getpid(), broker.process.pid}, broker.process.pid


# ---- Kafka ----


async def create_topics(broker: Tansu, partitions: int) -> None:
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                                  "KAFKA_TOPIC_PARTITIONS": str(partitions)})  # fmt: skip
    await ensure_topics(settings, [EVENTS, *OUTPUTS])


async def produce(broker: Tansu, records: list[tuple[bytes, bytes]]) -> dict[str, int]:
    """Send in order; each partition's end offset (exclusive) from the acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        acks = await asyncio.gather(*[await producer.send(EVENTS, v, key=k) for k, v in records])
    finally:
        await producer.stop()
    ends: dict[str, int] = {}
    for ack in acks:
        ends[str(ack.partition)] = max(ends.get(str(ack.partition), 0), ack.offset + 1)
    return ends


class Outputs:
    """A consumer of the output topics, read between runs: what a run wrote (Tansu's end offsets are wrong, so
    it reads until nothing came for a while)."""

    def __init__(self, broker: Tansu) -> None:
        self.consumer = AIOKafkaConsumer(*OUTPUTS, bootstrap_servers=broker.bootstrap, group_id=None,
                                         auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip

    async def drain(self, idle_seconds: float = 3.0) -> dict[str, int]:
        counts: dict[str, int] = {}
        last = time.monotonic()
        while time.monotonic() - last < idle_seconds:
            for tp, records in (await self.consumer.getmany(timeout_ms=500, max_records=50_000)).items():
                counts[tp.topic] = counts.get(tp.topic, 0) + len(records)
                last = time.monotonic()
        return counts


# ---- 1. throughput ----


async def throughput(args: argparse.Namespace, tmp: Path, parallelism: int) -> dict[str, Any]:
    stream = [(f"{e['token']}:{e['distinct_id']}".encode(), orjson.dumps(e)) for e in generate(args.events)]
    broker = Tansu().start()
    try:
        await create_topics(broker, parallelism)
        ends = await produce(broker, stream)
        if len(ends) != parallelism:
            raise RuntimeError(f"the stream reached partitions {sorted(ends)}, not {parallelism}")
        tiny = {p: min(TINY, o) for p, o in ends.items()}
        total, small = sum(ends.values()), sum(tiny.values())
        figures: dict[str, Any] = {
            "messages": total,
            "tiny_messages": small,
            "partitions": ends,
            "warnings": [],
        }
        commands = {
            "job": [sys.executable, "-m", "flink.job", "--bounded-offsets"],
            "passthrough": [
                sys.executable,
                str(ROOT / "bench" / "flink.py"),
                "passthrough",
                "--bounded-offsets",
            ],
        }
        outputs = Outputs(broker)
        await outputs.consumer.start()
        try:
            for size, offsets in (("tiny", tiny), ("full", ends)):
                for what, argv in commands.items():
                    name = f"p{parallelism}-{what}-{size}"
                    load = os.getloadavg()[0]
                    run = FlinkRun(name, [*argv, json.dumps(offsets)], run_env(broker, tmp, name, parallelism),
                                   tmp / f"{name}.log", *ours(broker))  # fmt: skip
                    result = await asyncio.to_thread(run.wait_bounded)
                    result["output"] = await outputs.drain()
                    result["load_1m_before"] = round(load, 2)
                    figures[f"{what}_{size}"] = result
                    print(f"  {name}: {result}", flush=True)
                    read = sum(offsets.values())
                    if what == "passthrough" and result["output"].get(PASSTHROUGH_TOPIC, 0) != read:
                        figures["warnings"].append(f"{name} wrote {result['output']}, read {read}")
                    if what == "job" and not result["output"].get(SESSIONS):
                        raise RuntimeError(f"{name}: no sessions\n{run.tail()}")
        finally:
            await outputs.consumer.stop()
        for what in commands:
            seconds = figures[f"{what}_full"]["run_s"] - figures[f"{what}_tiny"]["run_s"]
            figures[f"{what}_events_per_s"] = round((total - small) / seconds) if seconds > 0 else None
        return figures
    finally:
        broker.stop()


# ---- 2. delay ----


@dataclass
class Plan:
    times: list[float]  # seconds after the start of sending, per event
    events: list[dict[str, Any]]  # PostHog events, in event-time order


def delay_events(args: argparse.Namespace) -> Plan:
    """Users' visits (1-20 events 5 s-5 min apart, the next visit 31 min-3 h later), half with a
    `$session_id` per visit and half without (the job's session windows), as PostHog events (no `sent_at`:
    capture keeps the client's `timestamp`) in event time running `speed` times the wall clock, thinned to
    a steady `rate` events/s over `seconds`."""
    rng = random.Random(args.seed)
    start = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    t0 = int(start.timestamp() * 1000)
    span = int(args.seconds * args.speed * 1000)
    target = int(args.rate * args.seconds)
    events: list[tuple[int, dict[str, Any]]] = []
    user = 0
    while len(events) < target:
        user += 1
        distinct_id, explicit = f"bench-{user:06d}", user % 2 == 0
        t = t0 - 3 * 3_600_000 + rng.randrange(3 * 3_600_000)  # already busy when the window opens
        while t < t0 + span:
            visit_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            for _ in range(rng.randint(1, 20)):
                if t0 <= t < t0 + span:
                    props: dict[str, Any] = {"$current_url": f"https://shop.example/{rng.randrange(20)}",
                                             "$browser": "Chrome", "$os": "Linux", "$device_type": "Desktop",
                                             "$geoip_country_code": "DE"}  # fmt: skip
                    if explicit:
                        props["$session_id"] = visit_id
                    moment = datetime.fromtimestamp(t / 1000, UTC)
                    events.append((t, {
                        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "event": "$pageview",
                        "distinct_id": distinct_id,
                        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t % 1000:03d}Z",
                        "properties": props,
                    }))  # fmt: skip
                t += rng.randrange(5_000, 300_000)
            t += rng.randrange(31 * 60_000, 3 * 3_600_000)
    events.sort(key=lambda e: e[0])
    return Plan(times=[(t - t0) / 1000 / args.speed for t, _ in events], events=[e for _, e in events])


@dataclass
class Closing:
    """A session the job must write, and the event whose arrival lets the watermark pass its end."""

    session: dict[str, Any]  # tests/flink/reference.py's row
    event: int  # index into Plan.events


def expected_sessions(read: list[dict[str, Any]], index: dict[str, int], settings: Settings) -> list[Closing]:
    """What the job must write for the `events` messages read (each with its `_partition` and `_offset`),
    from tests/flink/reference.py, and each session's closing event: on every partition the first message
    (in offset order) that brings the partition's newest event time - FLINK_LATENESS_SECONDS to the
    window's end - 1 (the source's watermark is the lowest of its partitions'); of those, the one sent last."""
    partitions: dict[int, list[dict[str, Any]]] = {}
    for message in sorted(read, key=lambda m: (m["_partition"], m["_offset"])):
        partitions.setdefault(message["_partition"], []).append(message)
    newest: dict[int, list[int]] = {}  # partition -> running max of the event times, in offset order
    for p, messages in partitions.items():
        running, top = [], -(2**62)
        for m in messages:
            top = max(top, epoch_ms(m["timestamp"]))
            running.append(top)
        newest[p] = running
    # one order for the reference: the partitions merged by the order the events were sent (one partition:
    # its offset order, whatever capture and persons did to the order)
    merged = heapq.merge(*partitions.values(), key=lambda m: index[m["uuid"]])
    sessions, _, _ = reference([dict(m) for m in merged], settings.flink_lateness_seconds,
                               settings.session_gap_minutes)  # fmt: skip
    gap, lateness = settings.session_gap_minutes * 60_000, settings.flink_lateness_seconds * 1000
    out = []
    for session in sessions:
        need = session["end"] + gap - 1 + lateness
        firsts = [bisect.bisect_left(newest[p], need) for p in partitions]
        if all(i < len(newest[p]) for i, p in zip(firsts, partitions, strict=True)):
            closing = max(index[partitions[p][i]["uuid"]] for i, p in zip(firsts, partitions, strict=True))
            out.append(Closing(session, closing))
    return out


async def delay(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """capture (HTTP) -> events_raw -> persons -> events -> the job -> sessions, timed from the bench's
    HTTP request to its consumer reading the `sessions` row."""
    broker = Tansu().start()
    dsn = await create_database()
    stack: Stack | None = None
    run: FlinkRun | None = None
    try:
        env = {**run_env(broker, tmp, "p1-delay", 1), "KAFKA_TOPIC_PARTITIONS": str(args.partitions)}
        settings = Settings.from_env(env)
        await ensure_topics(settings, TOPICS)
        (tmp / "stack").mkdir()
        stack = Stack(tmp / "stack", broker.bootstrap, dsn, ["capture", "persons"],
                      kafka_topic_partitions=args.partitions)  # fmt: skip
        await asyncio.to_thread(stack.up)
        workers = {stack._processes[name].pid: name for name in stack.workers}
        plan = delay_events(args)
        index = {e["uuid"]: i for i, e in enumerate(plan.events)}
        load = os.getloadavg()[0]
        run = FlinkRun("p1-delay", [sys.executable, "-m", "flink.job"], env, tmp / "p1-delay.log",
                       *ours(broker), named=workers)  # fmt: skip
        deadline = time.monotonic() + 180
        while newest_checkpoint(Path(env["FLINK_CHECKPOINT_DIR"])) is None:  # running: a checkpoint is done
            if not run.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the job has no checkpoint after 180 s:\n{run.tail()}")
            await asyncio.sleep(0.2)
        running = time.monotonic() - run.launched

        arrived: dict[str, tuple[float, dict[str, Any]]] = {}  # session id -> (read at, row)
        read: dict[str, dict[str, Any]] = {}  # uuid -> `events` message (with _partition, _offset, _read)
        consumers = [
            AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, fetch_max_wait_ms=20)
            for topic in (SESSIONS, EVENTS)
        ]  # fmt: skip
        for consumer in consumers:
            await consumer.start()
        done = asyncio.Event()

        async def receive(consumer: AIOKafkaConsumer) -> None:
            while not done.is_set():
                batches = await consumer.getmany(timeout_ms=50, max_records=10_000)
                now = time.monotonic()
                for records in batches.values():
                    for r in records:
                        value = orjson.loads(r.value)
                        if r.topic == SESSIONS:
                            arrived.setdefault(value["session_id"], (now, value))
                        else:
                            value.update(_partition=r.partition, _offset=r.offset, _read=now)
                            read.setdefault(value["uuid"], value)

        receivers = [asyncio.create_task(receive(c)) for c in consumers]
        sent = [0.0] * len(plan.events)
        acked = [0.0] * len(plan.events)
        requests, refused, slowest = 0, 0, 0.0
        expected: list[Closing] = []
        try:
            began = time.monotonic()
            i = 0
            while i < len(plan.events):
                tick = time.monotonic()
                j = bisect.bisect_right(plan.times, tick - began, lo=i)
                if j > i:  # one PostHog /batch/ of what is due, requests one after another
                    status = await stack.send_posthog(plan.events[i:j])
                    answered = time.monotonic()
                    sent[i:j], acked[i:j] = [tick] * (j - i), [answered] * (j - i)
                    requests, slowest = requests + 1, max(slowest, answered - tick)
                    refused += (j - i) * (status != 200)
                    i = j
                if not run.alive():
                    raise RuntimeError(f"the job exited:\n{run.tail()}")
                if not all(stack.running(name) for name in stack.workers):
                    raise RuntimeError(f"a worker exited: see {tmp / 'stack'}")
                await asyncio.sleep(max(0.0, args.tick - (time.monotonic() - tick)))
            sending = time.monotonic() - began
            wait_until = time.monotonic() + args.drain
            while len(read) < len(plan.events) - refused and time.monotonic() < wait_until:
                await asyncio.sleep(0.2)
            expected = expected_sessions(list(read.values()), index, settings)
            wait_until = time.monotonic() + args.drain
            wanted = {c.session["session_id"] for c in expected}
            while wanted - set(arrived) and time.monotonic() < wait_until:
                await asyncio.sleep(0.2)
        finally:
            done.set()
            await asyncio.gather(*receivers)
            for consumer in consumers:
                await consumer.stop()
        figures = run.watch.finish()
        run.kill()

        def quantiles(values: list[float]) -> dict[str, int | None]:
            values = sorted(values)
            q = lambda p: round(1000 * values[min(len(values) - 1, int(p * len(values)))])  # noqa: E731
            return {"p50_ms": q(0.5), "p99_ms": q(0.99), "min_ms": q(0), "max_ms": round(1000 * values[-1])} \
                if values else dict.fromkeys(("p50_ms", "p99_ms", "min_ms", "max_ms"))  # fmt: skip

        measured = [c for c in expected if sent[c.event] - began >= args.warmup]
        got = [c for c in measured if c.session["session_id"] in arrived]
        closing_uuid = lambda c: plan.events[c.event]["uuid"]  # noqa: E731
        mismatched = sum(
            1 for c in got
            if (row := arrived[c.session["session_id"]][1])["event_count"] != c.session["event_count"]
            or row["distinct_id"] != c.session["distinct_id"] or row["kind"] != c.session["kind"]
        )  # fmt: skip
        reordered = sum(
            1 for a, b in itertools.pairwise(sorted(read.values(), key=lambda m: (m["_partition"], m["_offset"])))
            if a["_partition"] == b["_partition"] and index[a["uuid"]] > index[b["uuid"]]
        )  # fmt: skip
        return {
            "rate": args.rate,
            "seconds": round(sending, 1),
            "speed": args.speed,
            "partitions": args.partitions,
            "requests": requests,
            "slowest_request_ms": round(1000 * slowest),
            "events_sent": len(plan.events),
            "events_refused": refused,
            "events_read": len(read),
            "events_reordered": reordered,
            "project_ids": sorted({m["project_id"] for m in read.values()}),
            "sessions_closed": len(expected),
            "measured": len(got),
            "missing": len(measured) - len(got),
            "unexpected_rows": len(set(arrived) - {c.session["session_id"] for c in expected}),
            "mismatched_rows": mismatched,
            **quantiles([arrived[c.session["session_id"]][0] - sent[c.event] for c in got]),
            "from_ack": quantiles([arrived[c.session["session_id"]][0] - acked[c.event] for c in got]),
            "to_events": quantiles([read[closing_uuid(c)]["_read"] - sent[c.event] for c in got]),
            "from_events": quantiles(
                [arrived[c.session["session_id"]][0] - read[closing_uuid(c)]["_read"] for c in got]
            ),
            "job_running_after_s": round(running, 1),
            "load_1m_before": round(load, 2),
            **figures,
        }
    finally:
        if run is not None:
            run.kill()
        if stack is not None:
            await asyncio.to_thread(stack.down)
        broker.stop()
        await drop_database(dsn)


# ---- the report ----


def throughput_table(r: dict[str, Any]) -> list[str]:
    head = ("", "job p1", "passthrough p1", "job p2", "passthrough p2")
    runs = [(r[f"p{p}"], w) for p in (1, 2) for w in ("job", "passthrough")]

    def row(label: str, get: Any) -> tuple[str, ...]:
        return (label, *(str(get(t, w)) for t, w in runs))

    def both(get: Any) -> Any:
        return lambda t, w: "/".join(str(get(t[f"{w}_{s}"])) for s in ("tiny", "full"))

    def ratio(t: dict[str, Any], w: str) -> str:
        job, ceiling = t["job_events_per_s"], t["passthrough_events_per_s"]
        return "(ceiling)" if w != "job" else f"{job / ceiling:.2f}" if job and ceiling else "-"

    rows = [
        row("events/s, start-up left out", lambda t, w: f"{t[f'{w}_events_per_s'] or 0:,}"),
        row("ratio to the ceiling", ratio),
        row("full run s, submitted -> exit", lambda t, w: t[f"{w}_full"]["run_s"]),
        row("start-up s (tiny run): launch ->", lambda t, w: t[f"{w}_tiny"]["client_start_s"]),
        row("  submitted, submitted -> exit", lambda t, w: t[f"{w}_tiny"]["run_s"]),
        row("peak RSS MiB (tiny/full): JVM", both(lambda x: x["peak_rss_mib"].get("jvm", "-"))),
        row("  Python client", both(lambda x: x["peak_rss_mib"].get("client", "-"))),
        row("  Python UDF worker(s)", both(lambda x: x["peak_rss_mib"].get("worker", "-"))),
        row("  all, at once", both(lambda x: x["peak_total_rss_mib"])),
        row("CPU, cores (tiny/full): the run", both(lambda x: x["cores"])),
        row("  the broker", both(lambda x: x["broker_cores"])),
        row("  others (not this bench)", both(lambda x: x["others_cores"])),
    ]  # fmt: skip
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in [head, *rows]
    ]
    busy: dict[str, float] = {}
    for t, w in runs:
        for s in ("tiny", "full"):
            for name, cores in t[f"{w}_{s}"]["others_busiest"].items():
                busy[name] = max(busy.get(name, 0), cores)
    return [
        f"throughput: {r['p1']['messages']:,} messages (p1), {r['p2']['messages']:,} (p2) from "
        f"tests/flink/traffic.py; tiny runs {r['p1']['tiny_messages']}/{r['p2']['tiny_messages']} messages",
        "",
        lines[0],
        "-" * max(len(line) for line in lines),
        *lines[1:],
        f"busiest other processes in a run (cores): {busy or 'none >= 0.05'}",
        *(f"WARNING: {w}" for p in (1, 2) for w in r[f"p{p}"]["warnings"]),
    ]


def delay_table(d: dict[str, Any], warmup: float) -> list[str]:
    rss, named = d["peak_rss_mib"], d.get("named", {})
    ms = lambda q: f"p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms (min {q['min_ms']}, max {q['max_ms']})"  # noqa: E731
    return [
        f"delay, capture -> persons -> events -> job (p1, {d['partitions']} partition(s)) -> sessions, "
        f"{d['rate']:g} events/s for {d['seconds']} s in {d['requests']} PostHog /batch/ requests (slowest "
        f"{d['slowest_request_ms']} ms), event time x{d['speed']:g}:",
        f"  from the request sent: {ms(d)} over {d['measured']} sessions ({d['missing']} missing, "
        f"{d['unexpected_rows']} unexpected rows, {d['mismatched_rows']} differing from the reference)",
        f"  from the request acknowledged: {ms(d['from_ack'])}",
        f"  of which request sent -> the event read from `events`: {ms(d['to_events'])}",
        f"  and the event read from `events` -> the row read: {ms(d['from_events'])}",
        f"  events: {d['events_sent']} sent, {d['events_refused']} refused, {d['events_read']} read from `events` "
        f"({d['events_reordered']} out of order), project {d['project_ids']}",
        "  The closing event: the first event whose event time - FLINK_LATENESS_SECONDS reaches the session's end",
        "  (its last event + SESSION_GAP_MINUTES), sessions from tests/flink/reference.py on what `events` holds;",
        f"  sessions closed in the first {warmup:g} s of sending left out. Job running (first checkpoint) "
        f"{d['job_running_after_s']} s after launch.",
        f"  peak RSS MiB: JVM {rss.get('jvm')}, Python client {rss.get('client')}, UDF worker(s) "
        f"{rss.get('worker')}, all at once {d['peak_total_rss_mib']}; "
        + ", ".join(f"{n} {v['peak_rss_mib']}" for n, v in named.items()),
        f"  CPU, cores: the job {d['cores']}, "
        + "".join(f"{n} {v['cores']} ({v['cpu_s']} s), " for n, v in named.items())
        + f"the broker {d['broker_cores']}, others {d['others_cores']}"
        f"{' ' + str(d['others_busiest']) if d['others_busiest'] else ''}, 1-min load before {d['load_1m_before']}",
    ]


def table(r: dict[str, Any]) -> str:
    c = r["config"]
    lines = [f"bench/flink.py: {c['cpus']} CPUs, FLINK_JVM_HEAP={c['jvm_heap']}, ~{c['event_bytes']} B per event, "
             f"load average before {c['load_before']}", ""]  # fmt: skip
    if "p1" in r:
        if "throughput_time" in r:
            lines += [f"(throughput: the figures of the run of {r['throughput_time']})"]
        lines += [*throughput_table(r), ""]
    if "delay" in r:
        lines += delay_table(r["delay"], c["warmup"])
    return "\n".join(lines)


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    settings = Settings.from_env()
    sample = generate(2_000)
    result: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "events": args.events,
            "cpus": os.cpu_count(),
            "jvm_heap": settings.flink_jvm_heap,
            "event_bytes": round(sum(len(orjson.dumps(e)) for e in sample) / len(sample)),
            "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "warmup": args.warmup,
        },
    }
    if "throughput" in args.parts:
        for parallelism in (1, 2):
            print(f"throughput at parallelism {parallelism}", flush=True)
            result[f"p{parallelism}"] = await throughput(args, tmp, parallelism)
    if "delay" in args.parts:
        print("delay at parallelism 1", flush=True)
        result["delay"] = await delay(args, tmp)
        print(f"  {result['delay']}", flush=True)
    return result


def main() -> None:
    if sys.argv[1:2] == ["passthrough"]:
        parser = argparse.ArgumentParser(prog="bench/flink.py passthrough")
        parser.add_argument("--bounded-offsets")
        passthrough(parser.parse_args(sys.argv[2:]).bounded_offsets)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="throughput stream (traffic.py target)")
    parser.add_argument("--rate", type=float, default=500, help="delay: events/s sent")
    parser.add_argument("--seconds", type=float, default=60, help="delay: seconds of sending")
    parser.add_argument("--speed", type=float, default=300, help="delay: event seconds per wall second")
    parser.add_argument("--warmup", type=float, default=10, help="delay: seconds of sending not measured")
    parser.add_argument("--drain", type=float, default=30, help="delay: seconds to wait for the last rows")
    parser.add_argument("--tick", type=float, default=0.05, help="delay: seconds between PostHog batches")
    parser.add_argument("--partitions", type=int, default=1, help="delay: partitions of every topic")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--parts", default="throughput,delay", help="what to run: throughput, delay or both")
    parser.add_argument("--output", type=Path, default=ROOT / "var" / "bench" / "flink.json")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-flink-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    result["bench_seconds"] = round(time.monotonic() - started)
    print(table(result))
    print(f"bench {result['bench_seconds']} s")
    if "throughput" not in args.parts and args.output.exists():  # keep the last throughput figures
        previous = orjson.loads(args.output.read_bytes())
        if "p1" in previous:
            result.update(p1=previous["p1"], p2=previous["p2"],
                          throughput_time=previous.get("throughput_time", previous["time"]))  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()

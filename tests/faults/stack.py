"""The real workers as subprocesses, for fault tests: kill, start, restart, wait for an exit, optionally
restarted when they exit (supervisord's `autorestart=true`), events in through capture's HTTP API and the
stored rows read back through the writer's /api/sql.

    with Stack(tmp_path, broker.bootstrap, dsn, ["capture", "persons", "writer"]) as stack:
        status = await stack.send_posthog(events)
        assert stack.restart("persons", signal.SIGKILL) == -signal.SIGKILL

Each worker logs (stdout and stderr, every run appended) to <directory>/<name>.log.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

TOKEN = "faults-token"
API_KEY = "faults-api-key"  # the project's key and the operator's (DEV_API_KEY, for /api/sql)
SERVICE_PORTS = {"capture": "CAPTURE_PORT", "writer": "QUERY_PORT"}  # besides each worker's metrics port
PORTS = (*SERVICE_PORTS.values(), "CAPTURE_METRICS_PORT", "PERSONS_METRICS_PORT", "WRITER_METRICS_PORT",
         "DLQ_METRICS_PORT")  # fmt: skip
RESTART_DELAY_SECONDS = 0.2


class Stack:
    def __init__(
        self,
        directory: Path,
        kafka_bootstrap: str,
        postgres_dsn: str,
        workers: Sequence[str] = ("capture", "persons", "writer"),
        **settings: object,
    ) -> None:
        """`settings` override the environment the workers get, e.g. writer_batch_max_rows=10."""
        self.directory = directory
        self.workers = tuple(workers)
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAFKA_TOPIC_PARTITIONS": "4",
            "KAFKA_SESSION_TIMEOUT_SECONDS": "3",
            "POSTGRES_DSN": postgres_dsn,
            "CLICKHOUSE_URL": f"chdb://{directory}/chdb",
            **dict(zip(PORTS, map(str, service_ports(len(PORTS))), strict=True)),
            "QUERY_MAX_ROWS": "1000000",
            "DEV_API_KEY": API_KEY,
            "DRAIN_TIMEOUT_SECONDS": "20",
            "LOG_LEVEL": "info",
            # heartbeats (issue 10) off in effect: these tests count every message of a topic as an event;
            # the freshness and reconciliation tests turn them on
            "HEARTBEAT_SECONDS": "3600",
            "CAPTURE_REDIS_PREFIX": f"ua-test-{uuid.uuid4().hex}:",  # rate limits of this stack's own
            **{name.upper(): str(value) for name, value in settings.items()},
        }
        self.autorestart = False
        self.restarts = dict.fromkeys(self.workers, 0)  # restarts by the supervisor (autorestart)
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._exits: dict[str, queue.Queue[int]] = {name: queue.Queue() for name in self.workers}
        self._lock = threading.Lock()
        self._down = False

    # processes ----------------------------------------------------------------------------------------

    def up(self, timeout: float = 60) -> Stack:
        """Create the project (and migrate Postgres), start every worker and wait until each listens."""
        admin = [sys.executable, "-m", "workers", "admin", "create-project", "--name", "faults"]
        subprocess.run([*admin, "--token", TOKEN, "--api-key", API_KEY], env=self.env, check=True,
                       capture_output=True)  # fmt: skip
        for name in self.workers:
            self.start(name, timeout)
        return self

    def down(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after 30 s); nothing is restarted any more."""
        with self._lock:
            self._down = True
            processes = list(self._processes.values())
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Stack:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    def running(self, name: str) -> bool:
        process = self._processes.get(name)
        return process is not None and process.poll() is None

    def start(self, name: str, timeout: float = 60) -> None:
        """Start a worker that is not running and wait until it listens."""
        with self._lock:
            if self.running(name):
                raise RuntimeError(f"{name} is running")
            self._spawn(name)
        self.wait_ready(name, timeout)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the worker's process; wait_exit() says how it ended."""
        self._processes[name].send_signal(sig)

    def wait_exit(self, name: str, timeout: float = 30) -> int:
        """The return code of the worker's next exit not yet returned (negative: the signal that ended it).
        Every exit of every process of the worker is returned once, in order."""
        try:
            return self._exits[name].get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{name} did not exit within {timeout}s") from None

    def restart(self, name: str, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """kill(), wait_exit() and start() (not with autorestart: the supervisor restarts it itself);
        returns the return code of the exit."""
        if self.autorestart:
            raise RuntimeError("autorestart is on: kill() the worker and wait_restarted()")
        self.kill(name, sig)
        code = self.wait_exit(name, timeout)
        self.start(name, timeout)
        return code

    def wait_restarted(self, name: str, restarts: int, timeout: float = 60) -> None:
        """Wait until the supervisor has restarted the worker `restarts` times in all and it listens."""
        deadline = time.monotonic() + timeout
        while self.restarts[name] < restarts:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: {self.restarts[name]} restarts after {timeout}s, not {restarts}")
            time.sleep(0.05)
        self.wait_ready(name, max(deadline - time.monotonic(), 1))

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        """Wait until each of the worker's ports accepts connections; fail at once if it exits."""
        ports = [f"{name.upper()}_METRICS_PORT", *([SERVICE_PORTS[name]] if name in SERVICE_PORTS else [])]
        deadline = time.monotonic() + timeout
        for port in ports:
            while not _listening(int(self.env[port])):
                process = self._processes[name]
                if process.poll() is not None:
                    tail = (self.directory / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} exited {process.returncode} before listening:\n{tail}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: nothing listens on {port} after {timeout}s")
                time.sleep(0.05)

    def _spawn(self, name: str) -> None:
        """Start the worker's process (with the lock held) and a thread that records its exit and, with
        autorestart, starts it again."""
        with open(self.directory / f"{name}.log", "ab") as out:
            process = subprocess.Popen([sys.executable, "-m", "workers", name], env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT)  # fmt: skip
        self._processes[name] = process
        threading.Thread(target=self._supervise, args=(name, process), daemon=True).start()

    def _supervise(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self._exits[name].put(process.wait())
        if not self.autorestart:
            return
        time.sleep(RESTART_DELAY_SECONDS)
        with self._lock:
            if self.autorestart and not self._down and self._processes[name] is process:
                self._spawn(name)
                self.restarts[name] += 1  # after the new process is known: wait_restarted() then waits for it

    def log(self, name: str) -> list[dict[str, Any]]:
        """The worker's JSON log lines, every run's."""
        lines = (self.directory / f"{name}.log").read_bytes().splitlines()
        return [orjson.loads(line) for line in lines if line.startswith(b"{")]

    # HTTP ---------------------------------------------------------------------------------------------

    def url(self, port: str, path: str) -> str:
        return f"http://127.0.0.1:{self.env[port]}{path}"

    async def send_posthog(self, events: Sequence[dict[str, Any]]) -> int:
        """One PostHog /batch/ request to capture; its status (200: every event accepted)."""
        async with aiohttp.ClientSession() as http:
            body = {"api_key": TOKEN, "batch": list(events)}
            async with http.post(self.url("CAPTURE_PORT", "/batch/"), json=body) as response:
                return response.status

    async def sql(self, query: str) -> list[dict[str, Any]]:
        """The rows of a query through the writer's /api/sql (the whole answer, never a truncated one)."""
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            async with http.post(self.url("QUERY_PORT", "/api/sql"), json={"query": query},
                                 headers=headers) as response:  # fmt: skip
                body = await response.json()
        assert response.status == 200 and not body["truncated"], body
        return list(body["rows"])

    async def stored_uuids(self, where: str = "1") -> list[str]:
        """The uuids of the stored events (deduplicated: FINAL), sorted."""
        rows = await self.sql(f"SELECT toString(uuid) AS uuid FROM events FINAL WHERE {where} ORDER BY uuid")
        return [str(row["uuid"]) for row in rows]

    async def count(self, table: str = "events", where: str = "1") -> int:
        """Rows of a table once deduplicated (FINAL)."""
        rows = await self.sql(f"SELECT count() AS n FROM {table} FINAL WHERE {where}")
        return int(rows[0]["n"])


def service_ports(n: int) -> set[int]:
    """n free ports below Linux's ephemeral range (32768-60999), which bind(0) and outgoing connections
    never take: a worker's port stays unbound while it starts or restarts, and a free port from bind(0)
    could meanwhile be handed to another test's server (seen: another run's capture on QUERY_PORT)."""
    ports: set[int] = set()
    while len(ports) < n:
        port = random.SystemRandom().randrange(20_000, 32_768)  # whatever seed a test set
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.add(port)
    return ports


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0

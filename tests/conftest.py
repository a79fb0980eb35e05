"""Shared fixtures, and the markers made binding: a test that touches Postgres, Kafka or ClickHouse without
the marker saying so fails. Two checks: at setup, the component fixtures in the test's fixture closure;
during setup and the call, every socket connect to a component's port (tests.components.COMPONENT_PORTS,
or a Postgres unix socket) and every chDB session opened."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import chdb.session
import pytest

from tests.components import COMPONENT_PORTS, Tansu, create_database, drop_database
from workers.kafka import ensure_topics
from workers.migrate import migrate_postgres
from workers.settings import Settings

pytest_plugins = ["pytester"]

# fixture -> the marker a test using it (directly or through other fixtures) needs
COMPONENT_FIXTURES = {
    "tansu": "kafka",
    "kafka_settings": "kafka",
    "broker": "kafka",  # a test's own Tansu (faults, restarts)
    "module_broker": "kafka",  # a module's own Tansu (whole-stack and persons concurrency modules)
    "pg_dsn": "postgres",
    "dsn": "postgres",  # a module's own database (persons concurrency)
    "postgres_cluster": "postgres",
    "ch": "clickhouse",  # a module's ClickHouse client (chDB or clickhouse-server)
    "chdb_path": "clickhouse",
    "clickhouse_server": "clickhouse",
    "world": "clickhouse",  # the analytics package's chDB
}


def missing_markers(item: pytest.Item) -> dict[str, str]:
    """marker -> a fixture of the test's closure that needs it, for the markers the test lacks."""
    marked = {m.name for m in item.iter_markers()}
    needed = {COMPONENT_FIXTURES[f]: f for f in item.fixturenames if f in COMPONENT_FIXTURES}  # type: ignore[attr-defined]
    return {marker: fixture for marker, fixture in needed.items() if marker not in marked}


def component_of(address: Any) -> str | None:
    """The marker a connection to this socket address needs, None for anything else."""
    if isinstance(address, tuple):
        return COMPONENT_PORTS.get(address[1])
    if isinstance(address, str | bytes) and ".s.PGSQL." in os.fsdecode(address):
        return "postgres"
    return None


@contextmanager
def guarded(item: pytest.Item) -> Iterator[None]:
    """Refuse, and fail the test for, connections to components it is not marked for (any thread)."""
    marked = {m.name for m in item.iter_markers()}
    refused: list[str] = []

    def check(marker: str | None, what: object) -> None:
        if marker is not None and marker not in marked:
            refused.append(f"{what} needs @pytest.mark.{marker}")
            raise ConnectionRefusedError(f"unmarked test: {refused[-1]}")

    connect, connect_ex, session = socket.socket.connect, socket.socket.connect_ex, chdb.session.Session

    def guarded_connect(self: socket.socket, address: Any) -> None:
        check(component_of(address), f"a connection to {address!r}")
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        check(component_of(address), f"a connection to {address!r}")
        return connect_ex(self, address)

    def guarded_session(*args: Any, **kwargs: Any) -> Any:
        check("clickhouse", "a chDB session")
        return session(*args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex = guarded_connect, guarded_connect_ex  # type: ignore[method-assign]
    chdb.session.Session = guarded_session  # type: ignore[misc]
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = connect, connect_ex  # type: ignore[method-assign]
        chdb.session.Session = session  # type: ignore[misc]
        if refused:
            pytest.fail("; ".join(dict.fromkeys(refused)), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    missing = missing_markers(item)
    if missing:
        needs = ", ".join(f"@pytest.mark.{m} (fixture {f})" for m, f in sorted(missing.items()))
        pytest.fail(f"{item.nodeid} needs {needs}", pytrace=False)
    with guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with guarded(item):
        return (yield)


@pytest.fixture(scope="session")
def tansu() -> Iterator[Tansu]:
    broker = Tansu().start()
    yield broker
    broker.stop()


@pytest.fixture
def broker() -> Iterator[Tansu]:
    """A broker of the test's own (faults and restarts leave topics and groups odd)."""
    tansu = Tansu().start()
    yield tansu
    tansu.stop()


@pytest.fixture(scope="module")
def module_broker() -> Iterator[Tansu]:
    """A broker of the module's own, shared by its tests (other tests leave events in the session
    broker's topics)."""
    tansu = Tansu().start()
    yield tansu
    tansu.stop()


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    """A database of the test's own on the machine's Postgres (never restarted: restart a cluster)."""
    database = await create_database()
    yield database
    await drop_database(database)


@pytest.fixture(scope="session")
async def pg_dsn() -> AsyncIterator[str]:
    dsn = await create_database()
    await migrate_postgres(dsn)
    yield dsn
    await drop_database(dsn)


@pytest.fixture(scope="session")
def make_settings() -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        return Settings.from_env({k.upper(): str(v) for k, v in overrides.items()})

    return make


@pytest.fixture(scope="session")
async def kafka_settings(tansu: Tansu, make_settings: Callable[..., Settings]) -> Settings:
    settings = make_settings(
        kafka_bootstrap_servers=tansu.bootstrap, kafka_topic_partitions=4, kafka_session_timeout_seconds=2
    )
    await ensure_topics(settings)
    return settings

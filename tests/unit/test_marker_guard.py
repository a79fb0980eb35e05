"""The component markers are binding (tests/conftest.py): a run of tests that touch a component unmarked."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = """
import asyncio
import socket

import chdb.session
import pytest

from tests.components import COMPONENT_PORTS


@pytest.fixture
def listener():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        COMPONENT_PORTS[port] = "kafka"
        yield port
        del COMPONENT_PORTS[port]


def connect(port):
    socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.kafka
def test_marked(listener):
    connect(listener)


def test_unmarked(listener):
    connect(listener)


def test_unmarked_swallowing_the_refusal(listener):
    try:
        connect(listener)
    except OSError:
        pass


async def test_unmarked_asyncio(listener):
    await asyncio.open_connection("127.0.0.1", listener)


def test_unmarked_chdb(tmp_path):
    chdb.session.Session(str(tmp_path))


def test_unmarked_fixture(pg_dsn):
    pass
"""


def test_unmarked_tests_that_touch_a_component_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[2]))
    monkeypatch.setenv("COLUMNS", "200")  # the summary lines whole
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\nmarkers = kafka\n"
    )
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(test_touching=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rfE")
    result.assert_outcomes(passed=1, failed=4, errors=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED test_touching.py::test_unmarked - Failed: a connection to ('127.0.0.1', *) needs @pytest.mark.kafka",
            "FAILED test_touching.py::test_unmarked_swallowing_the_refusal - Failed: a connection to ('127.0.0.1', *)"
            " needs @pytest.mark.kafka",
            "FAILED test_touching.py::test_unmarked_asyncio - Failed: a connection to ('127.0.0.1', *) needs"
            " @pytest.mark.kafka",
            "FAILED test_touching.py::test_unmarked_chdb - Failed: a chDB session needs @pytest.mark.clickhouse",
            "ERROR test_touching.py::test_unmarked_fixture - Failed: test_touching.py::test_unmarked_fixture needs"
            " @pytest.mark.postgres (fixture pg_dsn)",
        ]
    )

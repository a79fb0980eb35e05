"""supervisord.conf, the systemd units, /metrics and `python -m workers` all come from one registry."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workers import deploy
from workers.registry import WORKERS
from workers.settings import FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_supervisord_conf_is_the_one_the_registry_makes() -> None:
    assert (ROOT / "supervisord.conf").read_text() == deploy.supervisord_conf()


def test_the_committed_systemd_units_are_the_ones_the_registry_makes() -> None:
    committed = {p.name: p.read_text() for p in (ROOT / "config" / "systemd").glob("*.service")}
    assert committed == deploy.systemd_units()
    assert sorted(committed) == sorted(f"user-analytics-{name}.service" for name in [*WORKERS, "flink"])


def test_supervisord_runs_the_broker_every_supervised_worker_and_the_flink_job() -> None:
    programs = [line[len("[program:") : -1] for line in deploy.supervisord_conf().splitlines()
                if line.startswith("[program:")]  # fmt: skip
    assert programs == ["tansu", "capture", "persons", "writer", "dlq", "flink"]


def test_every_worker_has_a_metrics_port_setting_and_reads_settings_that_exist() -> None:
    defaults = Settings.from_env({})
    ports = {w.name: w.metrics_port(defaults) for w in WORKERS.values()}
    assert ports == {"capture": 9100, "persons": 9101, "writer": 9102, "query": 9103, "dlq": 9104}
    for worker in WORKERS.values():
        names = worker.setting_names()
        assert set(names) <= {n.upper() for n in FIELDS}
        assert "KAFKA_BOOTSTRAP_SERVERS" in names and worker.metrics_port_setting.upper() in names


def _directives(unit: str) -> dict[str, dict[str, str]]:
    """A unit's sections and their `Key=value` lines (each key once in these units)."""
    sections: dict[str, dict[str, str]] = {}
    section: dict[str, str] = {}
    for line in unit.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = sections.setdefault(line[1:-1], {})
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert key not in section, f"{key} twice"
            section[key] = value
    return sections


def test_every_unit_restarts_on_failure_reads_the_env_file_and_outwaits_the_drain() -> None:
    drain = Settings.from_env({}).drain_timeout_seconds
    for name, text in deploy.systemd_units().items():
        unit = _directives(text)
        service = unit["Service"]
        assert service["Restart"] == "on-failure", name
        assert unit["Unit"]["StartLimitIntervalSec"] == "0", name  # never given up on during an outage
        assert service["EnvironmentFile"] == "/etc/user-analytics/user-analytics.env", name
        assert service["KillSignal"] == "SIGTERM", name
        assert float(service["TimeoutStopSec"]) > drain, name
        assert unit["Install"]["WantedBy"] == "multi-user.target", name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_every_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the committed units, installed in this checkout instead of
    /opt/user-analytics (it checks that ExecStart's program exists). It exits 0 even for a directive it
    ignores (an unknown key, a bad value), so any line it prints fails the test too."""
    python = Path(sys.executable)
    for path in (ROOT / "config" / "systemd").glob("*.service"):
        text = path.read_text().replace("/opt/user-analytics/.venv/bin/python", str(python))
        (tmp_path / path.name).write_text(text.replace("/opt/user-analytics", str(ROOT)))
    units = sorted(str(p) for p in tmp_path.glob("*.service"))
    done = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stderr
    assert len(units) == len(WORKERS) + 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_catches_a_bad_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt restart policy is reported."""
    text = deploy.systemd_units()["user-analytics-dlq.service"].replace("on-failure", "on-failures")
    text = text.replace("/opt/user-analytics/.venv/bin/python", sys.executable)
    (tmp_path / "bad.service").write_text(text.replace("/opt/user-analytics", str(ROOT)))
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "bad.service")], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "restart specifier" in done.stderr

"""supervisord.conf, the systemd units, /metrics and `python -m workers` all come from one registry."""

from __future__ import annotations

from pathlib import Path

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

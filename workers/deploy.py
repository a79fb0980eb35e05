"""supervisord.conf and the systemd units, made from the registry of workers (workers.registry).

`python -m workers supervisord > supervisord.conf` and `python -m workers systemd config/systemd` write
them; tests/unit/test_deploy.py fails when a committed file differs from what this module makes.
"""

from __future__ import annotations

from pathlib import Path

from workers.registry import WORKERS

_SUPERVISORD_HEAD = """\
; The local pipeline: `make up` starts it, `make down` stops it. Paths are relative to this file.
; Made by `python -m workers supervisord` from workers/registry.py: edit that, not this.
[supervisord]
logfile=%(here)s/var/log/supervisord.log
pidfile=%(here)s/var/supervisord.pid
childlogdir=%(here)s/var/log
directory=%(here)s

[unix_http_server]
file=%(here)s/var/supervisor.sock

[supervisorctl]
serverurl=unix://%(here)s/var/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:tansu]
command=%(here)s/scripts/tansu.sh
directory=%(here)s
priority=10
autorestart=true
stopsignal=TERM
stdout_logfile=%(here)s/var/log/tansu.log
redirect_stderr=true
"""

# a worker drains within DRAIN_TIMEOUT_SECONDS (30 by default); the supervisor waits a little longer
# (tests/unit/test_deploy.py holds it above the default: raise both together)
_STOP_WAIT_SECONDS = 40
_FLINK_SUMMARY = "the Flink job (flink/job.py): events -> sessions, event_counts_1m, late_events"


def _program(name: str, summary: str, command: str, priority: int, extra: str = "") -> str:
    """startsecs=0: a program that exits at once (Postgres or the broker not there yet) is restarted for as
    long as the outage lasts, instead of being given up on (FATAL) after a few quick failures."""
    return f"""
; {summary}
[program:{name}]
command=%(here)s/scripts/{command}
directory=%(here)s
priority={priority}
autorestart=true
startsecs=0
stopsignal=TERM
stopwaitsecs={_STOP_WAIT_SECONDS}
{extra}stdout_logfile=%(here)s/var/log/{name}.log
redirect_stderr=true
"""


def supervisord_conf() -> str:
    workers = [
        _program(w.name, w.summary, f"worker.sh {w.name}", 20) for w in WORKERS.values() if w.supervised
    ]
    # the job's JVM and its Python workers are children of the program: stop and kill them all together
    flink = _program("flink", _FLINK_SUMMARY, "flink.sh", 30, "stopasgroup=true\nkillasgroup=true\n")
    return _SUPERVISORD_HEAD + "".join(workers) + flink


def _unit(name: str, summary: str, reads: str, module: str) -> str:
    return f"""\
# Made by `python -m workers systemd` from workers/registry.py and workers/deploy.py: edit those, not this.
[Unit]
Description=user-analytics {name}: {summary}
After=network-online.target
Wants=network-online.target
# restarted for as long as an outage lasts (Postgres or the broker not there yet), never given up on
StartLimitIntervalSec=0

[Service]
Type=exec
User=user-analytics
WorkingDirectory=/opt/user-analytics
EnvironmentFile=/etc/user-analytics/user-analytics.env
# reads: {reads}
ExecStart=/opt/user-analytics/.venv/bin/python -m {module}
# a failure exits non-zero (or dies of a signal): restarted; a drain after SIGTERM exits 0: stays stopped
Restart=on-failure
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec={_STOP_WAIT_SECONDS}

[Install]
WantedBy=multi-user.target
"""


def systemd_units() -> dict[str, str]:
    """One unit per worker and one for the Flink job, for an install in /opt/user-analytics with its
    settings in /etc/user-analytics/user-analytics.env (the variables of README's Settings)."""
    units = {
        f"user-analytics-{w.name}.service": _unit(w.name, w.summary, ", ".join(w.setting_names()),
                                                  f"workers {w.name}")
        for w in WORKERS.values()
    }  # fmt: skip
    flink_reads = (
        "KAFKA_BOOTSTRAP_SERVERS, KAFKA_CONSUMER_GROUP_PREFIX, FLINK_*, SESSION_GAP_MINUTES, METRICS_HOST"
    )
    units["user-analytics-flink.service"] = _unit("flink", _FLINK_SUMMARY, flink_reads, "flink.job")
    return units


def write_systemd_units(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in systemd_units().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written

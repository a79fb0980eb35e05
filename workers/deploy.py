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
_STOP_WAIT_SECONDS = 40
# startsecs=0: a worker that exits at once (Postgres or the broker not there yet) is restarted for as long
# as the outage lasts, instead of being given up on (FATAL) after a few quick failures


# the job's JVM and its Python workers are children of the program: stop and kill them all together
_SUPERVISORD_FLINK = f"""
; the Flink job (flink/job.py): events -> sessions, event_counts_1m, late_events
[program:flink]
command=%(here)s/scripts/flink.sh
directory=%(here)s
priority=30
autorestart=true
startsecs=0
stopsignal=TERM
stopwaitsecs={_STOP_WAIT_SECONDS}
stopasgroup=true
killasgroup=true
stdout_logfile=%(here)s/var/log/flink.log
redirect_stderr=true
"""


def supervisord_conf() -> str:
    programs = [
        f"""
; {worker.summary}
[program:{worker.name}]
command=%(here)s/scripts/worker.sh {worker.name}
directory=%(here)s
priority=20
autorestart=true
startsecs=0
stopsignal=TERM
stopwaitsecs={_STOP_WAIT_SECONDS}
stdout_logfile=%(here)s/var/log/{worker.name}.log
redirect_stderr=true
"""
        for worker in WORKERS.values()
        if worker.supervised
    ]
    return _SUPERVISORD_HEAD + "".join(programs) + _SUPERVISORD_FLINK


def systemd_units() -> dict[str, str]:
    """One unit per worker, for an install in /opt/user-analytics with its settings in
    /etc/user-analytics/user-analytics.env (the variables of README's Settings)."""
    units = {}
    for worker in WORKERS.values():
        units[f"user-analytics-{worker.name}.service"] = f"""\
# Made by `python -m workers systemd` from workers/registry.py: edit that, not this.
[Unit]
Description=user-analytics {worker.name}: {worker.summary}
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User=user-analytics
WorkingDirectory=/opt/user-analytics
EnvironmentFile=/etc/user-analytics/user-analytics.env
# reads: {", ".join(worker.setting_names())}
ExecStart=/opt/user-analytics/.venv/bin/python -m workers {worker.name}
Restart=always
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec={_STOP_WAIT_SECONDS}

[Install]
WantedBy=multi-user.target
"""
    units["user-analytics-flink.service"] = f"""\
# Made by `python -m workers systemd` from workers/deploy.py: edit that, not this.
[Unit]
Description=user-analytics flink: the Flink job, events -> sessions, event_counts_1m, late_events
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User=user-analytics
WorkingDirectory=/opt/user-analytics
EnvironmentFile=/etc/user-analytics/user-analytics.env
# reads: KAFKA_BOOTSTRAP_SERVERS, KAFKA_CONSUMER_GROUP_PREFIX, FLINK_*, SESSION_GAP_MINUTES
ExecStart=/opt/user-analytics/.venv/bin/python -m flink.job
Restart=always
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec={_STOP_WAIT_SECONDS}

[Install]
WantedBy=multi-user.target
"""
    return units


def write_systemd_units(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in systemd_units().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written

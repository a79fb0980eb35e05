"""The streaming job: `events` -> `sessions`, `event_counts_1m` and `late_events` (README, Flink job).

`python -m flink.job` runs it on PyFlink's local mini-cluster; `flink run -py flink/job.py` submits it to a
cluster. The SQL is sql/flink/*.sql; this module fills in the settings and resumes from the newest
retained checkpoint, since the group offsets alone lag it and a restart from them repeats and splits rows.
On the mini-cluster it also serves the job's metrics (flink/metrics.py) from its REST API.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path

from flink.metrics import JOB_NAME, serve, start_polling
from workers.kafka import EVENT_COUNTS_1M, EVENTS, LATE_EVENTS, SESSIONS
from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SQL = ROOT / "sql" / "flink"
JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")
SESSION_NAMESPACE = uuid.UUID("6f1f7b1e-4a37-4c55-9b0e-2d8a1c1d5e01")
# how long a uuid is remembered for de-duplication (processing time): redeliveries come within minutes
DEDUP_TTL = "1 h"


def session_uuid(project_id: int, distinct_id: str, start_ms: int) -> str:
    """A windowed session's id: the same session gets the same id when its rows are produced again."""
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{project_id}:{distinct_id}:{start_ms}"))


def bounded_offsets(spec: str) -> str:
    """`{"0": 1200, "1": 980}` (partition -> end offset, exclusive) in the connector's syntax."""
    ends = json.loads(spec)
    return ";".join(
        f"partition:{int(p)},offset:{int(o)}" for p, o in sorted(ends.items(), key=lambda x: int(x[0]))
    )


def statements(name: str, params: dict[str, str]) -> list[str]:
    """The `;`-separated statements of sql/flink/<name>.sql with their `{{param}}`s filled in."""
    text = re.sub(r"\{\{(\w+)\}\}", lambda m: params[m.group(1)], (SQL / f"{name}.sql").read_text())
    return [s.strip() for s in re.split(r";\s*$", text, flags=re.MULTILINE) if s.strip()]


def sql_params(settings: Settings, bounded: str | None) -> dict[str, str]:
    """What sql/flink/*.sql's `{{param}}`s are filled with; `bounded`: end offsets as --bounded-offsets."""
    clause = ""
    if bounded:
        clause = (", 'scan.bounded.mode' = 'specific-offsets', "
                  f"'scan.bounded.specific-offsets' = '{bounded_offsets(bounded)}'")  # fmt: skip
    return {
        "bootstrap": settings.kafka_bootstrap_servers,
        "group": f"{settings.kafka_consumer_group_prefix}-flink",
        "events_topic": EVENTS,
        "sessions_topic": SESSIONS,
        "counts_topic": EVENT_COUNTS_1M,
        "late_topic": LATE_EVENTS,
        "bounded": clause,
        "lateness_seconds": str(settings.flink_lateness_seconds),
        "session_gap_minutes": str(settings.session_gap_minutes),
    }


def newest_checkpoint(directory: Path) -> Path | None:
    """The newest completed checkpoint (`<job id>/chk-N` with its `_metadata`) under the directory."""
    done = list(directory.glob("*/chk-*/_metadata"))
    return max(done, key=lambda p: p.stat().st_mtime_ns).parent if done else None


def remove_old_checkpoints(directory: Path, keep: Path | None) -> list[Path]:
    """Delete the job dirs (`<job id>/`) under the directory but the one holding `keep` (the chk-N resumed
    from), and return them: each start makes a new job dir and Flink never removes an earlier job's. The
    kept dir goes at a later start, once a newer job has a checkpoint of its own; after a restore the first
    checkpoint is a full one (Flink's default NO_CLAIM mode), so it needs nothing from the old dir."""
    jobs = [d for d in directory.glob("*") if d.is_dir() and re.fullmatch(r"[0-9a-f]{32}", d.name)]
    removed = sorted(d for d in jobs if keep is None or d != keep.parent)
    for job in removed:
        shutil.rmtree(job)
    return removed


def _uri(path: str) -> str:
    """A local path as a file:// URI; a URI (s3://, hdfs://: a cluster's shared storage) as it is."""
    return path if "://" in path else Path(path).resolve().as_uri()


def configuration(settings: Settings, restore: str | Path | None, local: bool = False) -> dict[str, str]:
    jars_dir = Path(settings.flink_jars_dir).resolve()
    missing = [j for j in JARS if not (jars_dir / j).is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} missing in {jars_dir}: run scripts/setup.sh")
    config = {
        "pipeline.name": JOB_NAME,
        "pipeline.jars": ";".join((jars_dir / j).as_uri() for j in JARS),
        "parallelism.default": str(settings.flink_parallelism),
        # UNIX_TIMESTAMP reads its string in this zone, and window bounds are rendered in it
        "table.local-time-zone": "UTC",
        "table.exec.state.ttl": DEDUP_TTL,
        # one Deduplicate for the three INSERTs instead of three (3x the uuid state: OutOfMemoryError at 256m)
        "table.optimizer.reuse-optimize-block-with-digest-enabled": "true",
        "execution.checkpointing.interval": f"{int(settings.flink_checkpoint_seconds * 1000)} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": _uri(settings.flink_checkpoint_dir),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "2",
        "state.backend.type": settings.flink_state_backend,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
    }
    if restore is not None:
        config["execution.state-recovery.path"] = _uri(str(restore))
    if local:  # the mini-cluster's REST API (a cluster's is its own), for /metrics; loopback only
        config["rest.bind-address"] = "127.0.0.1"
        config["rest.bind-port"] = str(settings.flink_rest_port)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flink.job", description=__doc__)
    parser.add_argument("--bounded-offsets", help='stop at these end offsets: {"partition": offset, ...}')
    parser.add_argument("--from-checkpoint", help="a retained checkpoint (.../chk-N) to resume from")
    args = parser.parse_args()
    settings = Settings.from_env()
    restore = args.from_checkpoint
    if restore is None and "://" not in settings.flink_checkpoint_dir:
        restore = newest_checkpoint(Path(settings.flink_checkpoint_dir))
        for old in remove_old_checkpoints(Path(settings.flink_checkpoint_dir), restore):
            print(f"flink: removed {old} (an earlier job's checkpoints)", flush=True)
    # `flink run` starts this script with a gateway to its own JVM; without one, PyFlink starts a mini-cluster
    local = "PYFLINK_GATEWAY_PORT" not in os.environ
    rest = f"http://127.0.0.1:{settings.flink_rest_port}"
    metrics = serve(rest, settings.metrics_host, settings.flink_metrics_port) if local else None
    os.environ["JVM_ARGS"] = f"-Xmx{settings.flink_jvm_heap}"  # read when the JVM starts, below

    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
    from pyflink.table.udf import udf

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for key, value in configuration(settings, restore, local).items():
        env.get_config().set(key, value)
    env.create_temporary_function("session_uuid", udf(session_uuid, result_type=DataTypes.STRING()))
    params = sql_params(settings, args.bounded_offsets)
    for statement in statements("tables", params):
        env.execute_sql(statement)
    inserts = env.create_statement_set()
    for statement in statements("inserts", params):
        inserts.add_insert_sql(statement)
    print(f"flink: submitting (resuming from {restore})" if restore else "flink: submitting", flush=True)
    result = inserts.execute()
    if metrics is not None:
        start_polling(metrics)
        print(f"flink: /metrics on {settings.metrics_host}:{settings.flink_metrics_port}", flush=True)
    result.wait()


if __name__ == "__main__":
    main()

"""Every worker, once: its name, what it does, its entry point, its arguments, the metrics it serves and
the settings it reads. `python -m workers`, each worker's /metrics, `supervisord.conf` and the systemd
units under `config/systemd/` are all made from this list (`python -m workers supervisord|systemd`, and a
test checks the committed files against them).

Entry points are imported only when their worker runs, so one worker never loads another's packages.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from workers.settings import Settings, SettingsError

Main = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]
# a one-shot mode chosen by arguments (dlq --list / --replay): returns the exit code, or None to run the worker
Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int] | None]

_COMMON_METRICS = ("process_", "python_", "ua_kafka_")
_CONSUMER_METRICS = ("ua_consumer_", "ua_dead_letter_", "ua_sanitized_")
_COMMON_SETTINGS = ("kafka_", "metrics_host", "drain_timeout_seconds", "log_level")
_CONSUMER_SETTINGS = (
    "sink_retry_",
    "dlq_max_ratio",
    "dlq_window_messages",
    "dlq_max_consecutive",
    "event_max_",
)


@dataclass(frozen=True)
class Worker:
    name: str
    summary: str
    main: Main
    metrics: tuple[str, ...]  # name prefixes of the metrics its /metrics serves
    settings: tuple[str, ...]  # name prefixes of the settings it reads
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    command: Command | None = None
    supervised: bool = True  # started by `make up` (the query API runs inside the writer with chdb://)

    @property
    def metrics_port_setting(self) -> str:
        return f"{self.name}_metrics_port"

    def metrics_port(self, settings: Settings) -> int:
        return int(getattr(settings, self.metrics_port_setting))

    def setting_names(self, settings: type[Settings] = Settings) -> list[str]:
        """The environment variables it reads, upper case, in the order Settings lists them."""
        prefixes = (*self.settings, self.metrics_port_setting)
        return [name.upper() for name in settings.__dataclass_fields__ if name.startswith(prefixes)]


async def _capture(settings: Settings, stopping: asyncio.Event) -> None:
    from workers.capture.app import main

    await main(settings, stopping)


async def _persons(settings: Settings, stopping: asyncio.Event) -> None:
    from workers.persons import main

    await main(settings, stopping)


async def _writer(settings: Settings, stopping: asyncio.Event) -> None:
    from workers import writer
    from workers.clickhouse import connect
    from workers.migrate import migrate_clickhouse
    from workers.query.api import main as query_main

    ch = await connect(settings.clickhouse_url)
    try:
        await migrate_clickhouse(ch)  # before the query API answers: its tables must exist
        jobs = [writer.main(settings, stopping, ch)]
        if settings.clickhouse_url.startswith("chdb://"):
            # only one process may open a chDB directory: the query API lives in the writer's process
            jobs.append(query_main(settings, stopping, ch))
        await all_or_nothing(jobs)
    finally:
        await ch.close()


async def _query(settings: Settings, stopping: asyncio.Event) -> None:
    from workers.clickhouse import connect
    from workers.query.api import main as query_main

    if settings.clickhouse_url.startswith("chdb://"):
        raise SettingsError("CLICKHOUSE_URL is chdb://: the query API is served by the writer's process")
    ch = await connect(settings.clickhouse_url)
    try:
        await query_main(settings, stopping, ch)
    finally:
        await ch.close()


async def _dlq(settings: Settings, stopping: asyncio.Event) -> None:
    from workers.dlq import main

    await main(settings, stopping)


def _dlq_arguments(parser: argparse.ArgumentParser) -> None:
    from workers.dlq import add_arguments

    add_arguments(parser)


def _dlq_command(settings: Settings, args: argparse.Namespace) -> Coroutine[Any, Any, int] | None:
    from workers.dlq import list_command, replay_command

    if args.list:
        return list_command(settings, args)
    if args.replay:
        return replay_command(settings, args)
    return None


async def all_or_nothing(jobs: list[Coroutine[Any, Any, None]]) -> None:
    """Run coroutines together; if one fails, cancel the others and raise its error."""
    tasks = [asyncio.create_task(j) for j in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


WORKERS = {
    w.name: w
    for w in (
        Worker(
            "capture",
            "HTTP for the PostHog and Amplitude SDKs, rate-limited -> events_raw, events_overflow, accepted_counts",
            _capture,
            (*_COMMON_METRICS, "ua_capture_", "ua_sanitized_"),
            (
                *_COMMON_SETTINGS,
                "postgres_dsn",
                "capture_",
                "project_cache_seconds",
                "event_max_",
                "dev_token",
                "heartbeat_seconds",  # issue 10: freshness and reconciliation
            ),
        ),
        Worker(
            "persons",
            "events_raw, events_overflow -> enrichment, identity and person properties in Postgres -> events, "
            "persons, person_distinct_ids",
            _persons,
            (*_COMMON_METRICS, *_CONSUMER_METRICS, "ua_persons_"),
            (
                *_COMMON_SETTINGS,
                *_CONSUMER_SETTINGS,
                "postgres_dsn",
                "persons_",
                "geoip_database_path",
                "heartbeat_seconds",
            ),
        ),
        Worker(
            "writer",
            "events, persons, person_distinct_ids, sessions, event_counts_1m, late_events, accepted_counts ->"
            " ClickHouse; freshness and reconciliation (and the query API with chdb://)",
            _writer,
            (
                *_COMMON_METRICS,
                *_CONSUMER_METRICS,
                "ua_writer_",
                "ua_clickhouse_",
                "ua_query_",
                "ua_pipeline_",
                "ua_reconcile_",
            ),
            (
                *_COMMON_SETTINGS,
                *_CONSUMER_SETTINGS,
                "clickhouse_url",
                "writer_",
                "postgres_dsn",
                "query_",
                "dev_api_key",
                "admin_api_key",
                "heartbeat_seconds",  # issue 10: freshness and reconciliation
                "reconcile_",
                "live_poll_seconds",  # issue 11: the web app
                "web_dist_dir",
            ),
        ),
        Worker(
            "query",
            "the query API over a ClickHouse server (with chdb:// the writer serves it)",
            _query,
            (*_COMMON_METRICS, "ua_query_"),
            (
                *_COMMON_SETTINGS,
                "clickhouse_url",
                "postgres_dsn",
                "query_",
                "dev_api_key",
                "admin_api_key",
                "live_poll_seconds",
                "web_dist_dir",
            ),
            supervised=False,
        ),
        Worker(
            "dlq",
            "dead_letter -> an index in Postgres; --list and --replay for operators",
            _dlq,
            (*_COMMON_METRICS, *_CONSUMER_METRICS, "ua_dlq_"),
            (*_COMMON_SETTINGS, "sink_retry_", "postgres_dsn", "dlq_", "heartbeat_seconds"),
            add_arguments=_dlq_arguments,
            command=_dlq_command,
        ),
    )
}

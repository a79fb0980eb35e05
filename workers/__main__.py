"""python -m workers <name>

capture | persons | writer | query | dlq   run a worker (writer also serves the query API with chdb://)
dlq --list | --replay [filters]           inspect or replay what the stages parked in dead_letter
migrate                                   apply the Postgres and ClickHouse migrations, then exit
admin create-project --name N [--timezone TZ] [--token T] [--api-key K]
supervisord | systemd DIR                 print supervisord.conf, or write the systemd units into DIR
reconcile [--hours N]                     accepted events vs stored, parked and blocked, per project and hour
status                                    processes, lag per stage, freshness, the DLQ, the last reconciliation
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import orjson

from workers import deploy, reconcile, runtime, status
from workers.registry import WORKERS
from workers.settings import Settings, SettingsError


async def _migrate(settings: Settings) -> None:
    from workers.clickhouse import connect
    from workers.migrate import migrate_clickhouse, migrate_postgres

    await migrate_postgres(settings.postgres_dsn)
    ch = await connect(settings.clickhouse_url)
    try:
        await migrate_clickhouse(ch)
    finally:
        await ch.close()


async def _create_project(settings: Settings, args: argparse.Namespace) -> dict[str, object]:
    from workers.migrate import migrate_postgres
    from workers.projects import ensure_project

    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"--timezone {args.timezone!r}: not an IANA time zone name") from None
    await migrate_postgres(settings.postgres_dsn)
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        project = await ensure_project(conn, args.name, args.token, args.api_key, args.timezone)
    finally:
        await conn.close()
    return {
        "id": project.id, "name": project.name, "api_token": project.api_token,
        "api_key": project.api_key, "timezone": project.timezone,
    }  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    for worker in WORKERS.values():
        epilog = "settings (environment): " + ", ".join(worker.setting_names())
        sub = commands.add_parser(worker.name, help=worker.summary, description=worker.summary, epilog=epilog)
        if worker.add_arguments is not None:
            worker.add_arguments(sub)
    commands.add_parser("migrate", help="apply migrations and exit")
    commands.add_parser("supervisord", help="print supervisord.conf, made from the registry of workers")
    systemd = commands.add_parser("systemd", help="write a systemd unit per worker into DIR")
    systemd.add_argument("directory", type=Path)
    admin = commands.add_parser("admin", help="administration").add_subparsers(dest="action", required=True)
    create = admin.add_parser("create-project", help="create a project and print its token and API key")
    create.add_argument("--name", required=True)
    create.add_argument("--timezone", default="UTC")
    create.add_argument("--token", help="capture token (default: generated)")
    create.add_argument("--api-key", help="query API key (default: generated)")
    # issue 10: freshness and reconciliation
    reconcile.add_arguments(
        commands.add_parser("reconcile", help="compare accepted events with what became of them")
    )
    commands.add_parser(
        "status", help="processes, lag per stage, freshness, the DLQ, the last reconciliation"
    )
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"invalid setting: {exc}", file=sys.stderr)
        return 2
    if args.command == "supervisord":
        print(deploy.supervisord_conf(), end="")
        return 0
    if args.command == "systemd":
        for path in deploy.write_systemd_units(args.directory):
            print(path)
        return 0
    if args.command in ("reconcile", "status"):
        runtime.configure_logging("warning")  # a command's output is what it prints
        return asyncio.run(
            (reconcile.command if args.command == "reconcile" else status.command)(settings, args)
        )
    if args.command in WORKERS:
        worker = WORKERS[args.command]
        once = worker.command(settings, args) if worker.command is not None else None
        if once is None:
            return runtime.run(worker, settings)
        runtime.configure_logging("warning")  # a command's output is what it prints
        return asyncio.run(once)
    runtime.configure_logging(settings.log_level)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        else:
            print(orjson.dumps(asyncio.run(_create_project(settings, args))).decode())
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
